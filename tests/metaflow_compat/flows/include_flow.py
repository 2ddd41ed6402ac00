"""IncludeFile as a Metaflow flow uses it: text with a default path, and bytes."""

import hashlib
import os

from lamina import FlowSpec, IncludeFile, step


class IncludeFlow(FlowSpec):
    notes = IncludeFile(
        "notes", help="a text file", default=os.path.join(os.path.dirname(__file__), "notes.txt")
    )
    blob = IncludeFile("blob", is_text=False, required=True, help="any file, read as bytes")

    @step
    def start(self):
        self.notes_seen = self.notes
        self.blob_sha = hashlib.sha256(self.blob).hexdigest()
        self.next(self.remote)

    @step
    def remote(self):
        # a later task reads the same contents again, from the blob store
        self.blob_copy = self.blob
        self.kinds = (type(self.notes).__name__, type(self.blob).__name__)
        self.next(self.end)

    @step
    def end(self):
        print(f"notes: {len(self.notes)} characters, blob: {len(self.blob)} bytes")


if __name__ == "__main__":
    IncludeFlow()
