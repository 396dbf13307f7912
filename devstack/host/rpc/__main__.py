"""`python -m devstack.host.rpc`: generate the FunctionRpc classes (run by `make install`)."""

from devstack.host.rpc import generate

if __name__ == "__main__":
    print(f"FunctionRpc classes: {generate()}")
