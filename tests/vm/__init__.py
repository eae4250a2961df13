"""Run commands (the test suite) under other kernels: Debian's packaged kernels booted in qemu.

    python -m tests.vm 6.12 -- python3 -m pytest tests/links -k kprobe
    python -m tests.vm --feature kprobe -- python3 -m pytest -m kernel
    python -m tests.vm --list

``kernels`` holds the table of kernels and their features, ``fetch`` downloads kernels and
installs the host tools, ``initramfs`` builds the boot image, ``boot`` runs qemu.
"""
