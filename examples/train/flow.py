"""Train a model per hyperparameter in parallel, keep the best, write predictions back.

    cd examples/train && python flow.py run
    python flow.py run --stack aws-sagemaker     # the same file, on another stack

The table ``iris`` ships with the example as ``data/iris.csv``. On the local stack DuckDB sees
files in ``data/`` as tables; on any other stack the first run loads it into the warehouse.
"""

from pathlib import Path

from lamina import FlowSpec, Parameter, current, resources, step

SHIPPED = Path(__file__).parent / "data" / "iris.csv"


class TrainFlow(FlowSpec):
    """Iris classifier: a foreach over regularisation strengths, the best one wins."""

    test_fraction = Parameter("test_fraction", default=0.3, help="share of rows held out for scoring")
    seed = Parameter("seed", default=7, help="random seed of the split")

    @step
    def start(self):
        """Read the training table through the stack's data layer."""
        if "iris" not in current.data.tables():
            import pyarrow.csv

            current.data.write("iris", pyarrow.csv.read_csv(SHIPPED))
        self.table = current.data.read("iris")
        print(f"read {self.table.num_rows} rows of iris")
        self.grid = [0.01, 0.1, 1.0, 10.0]
        self.next(self.train, foreach="grid")

    @resources(cpu=1, memory=1024)
    @step
    def train(self):
        """Fit one logistic regression per C value."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split

        frame = self.table.to_pandas()
        features = frame.drop(columns=["species"])
        x_train, x_test, y_train, y_test = train_test_split(
            features,
            frame["species"],
            test_size=self.test_fraction,
            random_state=self.seed,
            stratify=frame["species"],
        )
        self.c = self.input
        self.model = LogisticRegression(C=self.c, max_iter=1000).fit(x_train, y_train)
        self.score = float(self.model.score(x_test, y_test))
        current.log_metric("accuracy", self.score)
        print(f"C={self.c}: accuracy {self.score:.3f}")
        self.next(self.pick)

    @step
    def pick(self, inputs):
        """Keep the best model."""
        best = max(inputs, key=lambda inp: (inp.score, -inp.c))
        self.model, self.score, self.best_c = best.model, best.score, best.c
        self.scores = {inp.c: inp.score for inp in inputs}
        self.merge_artifacts(inputs, include=["table"])
        self.next(self.end)

    @step
    def end(self):
        """Write predictions back through the data layer."""
        import pyarrow as pa

        frame = self.table.to_pandas()
        predicted = self.model.predict(frame.drop(columns=["species"]))
        current.data.write(
            "iris_predictions", pa.table({"species": frame["species"], "predicted": predicted})
        )
        self.accuracy_all = float((predicted == frame["species"]).mean())
        print(f"best C={self.best_c} (held-out accuracy {self.score:.3f}); wrote iris_predictions")


if __name__ == "__main__":
    TrainFlow()
