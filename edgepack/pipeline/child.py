"""`python -m edgepack.pipeline.child FD`: a converter worker (see isolation.py), started by the
build; FD is its end of the socket pair to the parent."""
import sys

from edgepack.pipeline.isolation import child_main

if __name__ == "__main__":
    child_main(int(sys.argv[1]))
