"""A small training flow the aws-sagemaker tests run on ``local`` and on the emulated AWS stack.

It writes a table, reads it back, fans out over ridge penalties (a foreach inside a static
branch), queries an aggregate, joins everything and writes a result table: every layer is used,
and every result is computed exactly (``math.fsum``, rounding), so the two stacks must agree.
"""

import csv
import math
from pathlib import Path

from lamina import FlowSpec, Parameter, current, resources, step

MEASURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


class AwsTrainFlow(FlowSpec):
    """Fit a one-feature ridge regression of petal width on petal length for several penalties."""

    alphas = Parameter("alphas", default=[0.0, 1.0, 10.0], help="ridge penalties to try")

    @step
    def start(self):
        """Load the CSV shipped with the flow's code into the data layer."""
        with open(Path(__file__).parent / "iris.csv") as fh:
            rows = list(csv.DictReader(fh))
        columns = {name: [float(r[name]) for r in rows] for name in MEASURES}
        columns["species"] = [r["species"] for r in rows]
        current.data.write("iris", columns, mode="replace")
        self.rows = len(rows)
        self.next(self.features, self.summary)

    @step
    def features(self):
        """Read the table back and keep the two columns the model uses."""
        table = current.data.read("iris")
        self.x = table.column("petal_length").to_pylist()
        self.y = table.column("petal_width").to_pylist()
        self.next(self.fit, foreach="alphas")

    @resources(cpu=2)
    @step
    def fit(self):
        """One penalty per task: slope = sum(xy) / (sum(xx) + alpha)."""
        alpha = float(self.input)
        slope = math.fsum(a * b for a, b in zip(self.x, self.y, strict=True)) / (
            math.fsum(a * a for a in self.x) + alpha
        )
        error = math.fsum((b - slope * a) ** 2 for a, b in zip(self.x, self.y, strict=True)) / len(self.x)
        self.model = {"alpha": alpha, "slope": round(slope, 10), "error": round(error, 10)}
        print(f"alpha={alpha:g} slope={slope:.4f} mse={error:.4f}")
        self.next(self.choose)

    @step
    def choose(self, inputs):
        """Join the foreach: every model, and the best one."""
        self.models = sorted((inp.model for inp in inputs), key=lambda m: m["alpha"])
        self.best = min(self.models, key=lambda m: m["error"])
        self.next(self.merge)

    @step
    def summary(self):
        """An aggregate query on the same table, in SQL both DuckDB and Snowflake speak."""
        table = current.data.query(
            "SELECT species, COUNT(*) AS n, AVG(petal_length) AS mean_petal_length "
            "FROM iris GROUP BY species ORDER BY species"
        )
        self.species = [
            {
                "species": r["species"],
                "n": int(r["n"]),
                "mean_petal_length": round(float(r["mean_petal_length"]), 6),
            }
            for r in table.to_pylist()
        ]
        self.next(self.merge)

    @step
    def merge(self, inputs):
        """Join the static branch."""
        self.models = inputs.choose.models
        self.best = inputs.choose.best
        self.species = inputs.summary.species
        self.rows = inputs.summary.rows
        self.next(self.end)

    @step
    def end(self):
        """Store the models as a table."""
        current.data.write("models", self.models, mode="replace")
        self.tables = sorted(t for t in current.data.tables() if t in ("iris", "models"))
        print("best:", self.best)


if __name__ == "__main__":
    AwsTrainFlow()
