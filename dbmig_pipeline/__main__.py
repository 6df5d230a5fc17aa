"""The `dbmig` command's entry point (`dbmig …` and `python -m dbmig_pipeline …`).

A module of its own so that the collector is held off before the command
line's imports start (see startup.py).
"""
from dbmig_pipeline import startup


def main() -> None:
    startup.begin_command()
    with startup.building():
        from dbmig_pipeline.cli import main as command_line
    command_line()


if __name__ == "__main__":
    main()
