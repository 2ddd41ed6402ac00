import os
import sys

from lamina import FlowSpec, step


class SecretValuesFlow(FlowSpec):
    @step
    def start(self):
        print("db at postgresql://lamina:Pg-pass-1234@db.internal:5432/prod")
        print(
            "blob conn DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=QUJDREVGR0hJSktM==;"
            "EndpointSuffix=core.windows.net"
        )
        print(
            "download https://acct.blob.core.windows.net/c/model.bin?sv=2022-11-02&sp=r&sig=SAS%2Bsignature%3D"
        )
        print("token", os.environ["MY_SERVICE_PAT"], file=sys.stderr)
        self.next(self.end)

    @step
    def end(self):
        sys.stdout.write("#" * int(os.environ.get("LONG_LINE_BYTES", "0")))  # a progress bar: no newline


if __name__ == "__main__":
    SecretValuesFlow()
