"""``python -m zoo`` is the ``zoo`` command (for launchers such as ``torchrun -m zoo``)."""

from zoo.cli import main

if __name__ == "__main__":
    main()
