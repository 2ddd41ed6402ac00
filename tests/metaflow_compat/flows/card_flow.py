"""Cards as Metaflow flows write them: components appended to current.card, and a default card."""

from lamina import FlowSpec, card, current, step
from lamina.cards import Artifact, Image, LineChart, Markdown, Table

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)


class CardFlow(FlowSpec):
    @card
    @step
    def start(self):
        self.losses = [1.0, 0.5, 0.25, 0.125]
        self.best = 0.125
        current.card.append(Markdown("# Training report\n\nLoss fell **fast** on <run>.\n\n- one\n- two"))
        current.card.append(
            Table([["adam", 0.125], ["sgd", Markdown("*0.3*")]], headers=["optimizer", "loss"])
        )
        current.card.append(Image(PNG, label="a pixel"))
        current.card.append(LineChart(range(4), {"train": self.losses}, title="loss", xlabel="epoch"))
        current.card.append(Artifact({"k": 1}, name="config"))
        self.next(self.end)

    @card(type="blank")
    @step
    def end(self):
        current.card.append(Markdown("just this"))


if __name__ == "__main__":
    CardFlow()
