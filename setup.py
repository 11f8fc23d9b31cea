"""Install minunet: `pip install -e ".[test]"` (everything is declared in setup.cfg)."""
from setuptools import setup

setup()
