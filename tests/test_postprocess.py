"""Post-processing: hand-drawn masks, and every result against a plain-Python breadth-first flood fill."""
from collections import deque

import pytest
import torch

from minunet.postprocess import clean_mask, fill_holes, largest_region, region_labels

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def draw(*rows):
    """A (1, 1, H, W) bool mask from strings: '#' foreground, '.' background."""
    return torch.tensor([[c == "#" for c in row] for row in rows])[None, None]


def regions_by_bfs(grid, value, steps):
    """The regions of the pixels of grid (a list of lists of bools) equal to `value`, joined by `steps`,
    each a list of (row, column), found by breadth-first search."""
    h, w = len(grid), len(grid[0])
    seen, regions = set(), []
    for start in ((i, j) for i in range(h) for j in range(w)):
        if grid[start[0]][start[1]] != value or start in seen:
            continue
        seen.add(start)
        region, queue = [], deque([start])
        while queue:
            i, j = queue.popleft()
            region.append((i, j))
            for di, dj in steps:
                n = (i + di, j + dj)
                if 0 <= n[0] < h and 0 <= n[1] < w and grid[n[0]][n[1]] == value and n not in seen:
                    seen.add(n)
                    queue.append(n)
        regions.append(region)
    return regions


EIGHT = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)]
FOUR = [(-1, 0), (1, 0), (0, -1), (0, 1)]


def largest_region_by_bfs(image):
    """largest_region of one (H, W) bool image: the biggest 8-connected region; of equal ones, the one whose
    last pixel in row-major order comes first."""
    grid, w = image.tolist(), image.shape[1]
    out = torch.zeros_like(image)
    regions = regions_by_bfs(grid, True, EIGHT)
    if regions:
        best = max(regions, key=lambda r: (len(r), -max(i * w + j for i, j in r)))
        for i, j in best:
            out[i, j] = True
    return out


def fill_holes_by_bfs(image):
    """fill_holes of one (H, W) bool image: background regions (4-connected) that touch no border are filled."""
    grid, (h, w) = image.tolist(), image.shape
    out = image.clone()
    for region in regions_by_bfs(grid, False, FOUR):
        if not any(i in (0, h - 1) or j in (0, w - 1) for i, j in region):
            for i, j in region:
                out[i, j] = True
    return out


def random_masks(seed, b, h, w):
    """(b, 1, h, w) bool masks of varied density: smoothed noise, so there are blobs, specks and holes."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(b, 1, h, w, generator=g)
    smooth = torch.nn.functional.avg_pool2d(noise, 3, stride=1, padding=1, count_include_pad=False)
    density = torch.linspace(0.35, 0.65, b).view(b, 1, 1, 1)
    return (smooth + 0.3 * noise) / 1.3 < density


def test_two_blobs_keep_the_larger():
    mask = draw("##.....",
                "##..###",
                ".....##",
                "..#..##")
    assert torch.equal(largest_region(mask), draw(".......",
                                                  "....###",
                                                  ".....##",
                                                  ".....##"))


def test_diagonal_touching_is_connected():
    mask = draw("#....",
                ".#...",
                "..#.#",
                "...##")
    assert torch.equal(largest_region(mask), mask)  # one region of 6 pixels, not 2 + 4
    labels = region_labels(mask, connectivity=8)
    assert labels[mask].unique().tolist() == [5 * 3 + 4 + 1]  # the region's last flat index + 1
    assert labels[~mask].unique().tolist() == [0]
    assert region_labels(mask, connectivity=4)[mask].tolist() == [1, 7, 13, 20, 20, 20]  # by edges: 1+1+1+3


def test_ring_hole_is_filled_and_border_gap_is_not():
    ring = draw(".....",
                ".###.",
                ".#.#.",
                ".###.",
                ".....")
    assert torch.equal(fill_holes(ring), draw(".....",
                                              ".###.",
                                              ".###.",
                                              ".###.",
                                              "....."))
    open_ring = draw("..#.#",  # the gap at the top right reaches the border: not a hole
                     "..#.#",
                     "..###",
                     ".....")
    assert torch.equal(fill_holes(open_ring), open_ring)
    corner_leak = draw("###.",  # background that touches the hole only at a corner does not drain it
                       "#.#.",
                       "###.",
                       "...#")
    assert torch.equal(fill_holes(corner_leak), draw("###.",
                                                     "###.",
                                                     "###.",
                                                     "...#"))


def test_empty_and_full_masks():
    for h, w in ((1, 1), (5, 7)):
        empty = torch.zeros(2, 1, h, w, dtype=torch.bool)
        full = torch.ones(2, 1, h, w, dtype=torch.bool)
        for f in (largest_region, fill_holes, clean_mask):
            assert torch.equal(f(empty), empty) and torch.equal(f(full), full)


def test_clean_mask_removes_specks_then_fills():
    mask = draw("#.......",
                "..####..",
                "..#..#..",
                "..####.#",
                "........")
    assert torch.equal(clean_mask(mask), draw("........",
                                              "..####..",
                                              "..####..",
                                              "..####..",
                                              "........"))


def test_ties_and_batches_are_per_image():
    a = draw("##..##",  # two regions of 2: the one whose last pixel comes first (the left one) is kept
             "......")
    b = draw("......",
             "#..###")
    out = largest_region(torch.cat([a, b]))
    assert torch.equal(out[0:1], draw("##....", "......"))
    assert torch.equal(out[1:2], draw("......", "...###"))


@pytest.mark.parametrize("seed,b,h,w", [(0, 6, 13, 17), (1, 4, 32, 32), (2, 5, 17, 13), (3, 3, 1, 9), (4, 2, 24, 40)])
def test_against_breadth_first_search(seed, b, h, w):
    masks = random_masks(seed, b, h, w)
    largest, filled, cleaned = largest_region(masks), fill_holes(masks), clean_mask(masks)
    for k in range(b):
        assert torch.equal(largest[k, 0], largest_region_by_bfs(masks[k, 0]))
        assert torch.equal(filled[k, 0], fill_holes_by_bfs(masks[k, 0]))
        assert torch.equal(cleaned[k, 0], fill_holes_by_bfs(largest_region_by_bfs(masks[k, 0])))
    if h > 1:  # there were specks to remove and holes to fill: the comparison tests something
        assert largest.sum() < masks.sum() and filled.sum() > masks.sum()


def test_a_long_thin_spiral_is_one_region():
    # a one-pixel-wide spiral: its ends are 240 steps apart along the path, so labels must travel far
    h = w = 21
    grid = [[False] * w for _ in range(h)]
    top, left, bottom, right = 0, 0, h - 1, w - 1
    while top <= bottom and left <= right:
        for j in range(left, right + 1):
            grid[top][j] = True
        for i in range(top, bottom + 1):
            grid[i][right] = True
        for j in range(left, right + 1):
            grid[bottom][j] = True
        for i in range(top + 2, bottom + 1):
            grid[i][left] = True
        top, left, bottom, right = top + 2, left + 2, bottom - 2, right - 2
        if top <= bottom:
            grid[top][left - 1] = True
    mask = torch.tensor(grid)[None, None]
    speck = mask.clone()
    speck[0, 0, h // 2, w // 2 + 1] = not speck[0, 0, h // 2, w // 2 + 1]
    for m in (mask, speck):
        assert torch.equal(largest_region(m)[0, 0], largest_region_by_bfs(m[0, 0]))
        assert torch.equal(fill_holes(m)[0, 0], fill_holes_by_bfs(m[0, 0]))


def test_memory_layout_does_not_matter():
    masks = random_masks(5, 3, 20, 20)
    for f in (largest_region, fill_holes, clean_mask):
        expected = f(masks)
        assert torch.equal(f(masks.contiguous(memory_format=torch.channels_last)), expected)
        view = masks.transpose(2, 3)  # non-contiguous
        assert torch.equal(f(view), f(view.contiguous()))


def test_only_bool_masks_shaped_b1hw():
    with pytest.raises(ValueError, match=r"bool tensor shaped \(B, 1, H, W\)"):
        largest_region(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"bool tensor shaped \(B, 1, H, W\)"):
        fill_holes(torch.zeros(4, 4, dtype=torch.bool))
