"""dphelpers.quiet: native writes to fds 1 and 2 are discarded inside the block only."""
import os

from dphelpers.quiet import native_output_silenced


def test_native_output_is_silenced_then_restored(capfd):
    os.write(1, b"before\n")
    with native_output_silenced():
        os.write(1, b"hidden out\n")
        os.write(2, b"hidden err\n")
    os.write(1, b"after\n")
    out, err = capfd.readouterr()
    assert out == "before\nafter\n" and err == ""
