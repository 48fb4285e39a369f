"""Run vidcolor from a checkout: ``python cli.py colorize IN -o OUT``."""

from vidcolor.cli import main

if __name__ == "__main__":
    main()
