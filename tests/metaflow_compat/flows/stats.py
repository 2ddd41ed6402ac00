"""Metaflow's statistics tutorial (02-statistics), in its shape: IncludeFile and a foreach."""

from lamina import FlowSpec, IncludeFile, step


def script_path(filename):
    """A file next to this flow, whatever the working directory."""
    import os

    return os.path.join(os.path.dirname(__file__), filename)


class MovieStatsFlow(FlowSpec):
    """Quartiles of box-office gross for each genre, one foreach task per genre."""

    movie_data = IncludeFile(
        "movie_data", help="The path to a movie metadata file.", default=script_path("movies.csv")
    )

    @step
    def start(self):
        """Load the CSV into columns and fan out over its genres."""
        import csv

        columns = ["movie_title", "title_year", "genres", "gross"]
        self.dataframe = {col: [] for col in columns}
        for row in csv.DictReader(self.movie_data.splitlines()):
            for col in columns:
                val = int(row[col]) if col in ("title_year", "gross") else row[col]
                self.dataframe[col].append(val)
        self.genres = list({genre for genres in self.dataframe["genres"] for genre in genres.split("|")})
        self.next(self.compute_statistics, foreach="genres")

    @step
    def compute_statistics(self):
        """Statistics of one genre (self.input)."""
        self.genre = self.input
        print("Computing statistics for %s" % self.genre)
        selector = [self.genre in row for row in self.dataframe["genres"]]
        for col in self.dataframe.keys():  # changed in place, as the tutorial does
            self.dataframe[col] = [value for value, keep in zip(self.dataframe[col], selector) if keep]
        order = sorted(range(len(self.dataframe["gross"])), key=self.dataframe["gross"].__getitem__)
        for col in self.dataframe.keys():
            self.dataframe[col] = [self.dataframe[col][i] for i in order]
        del self.dataframe["title_year"]
        n_points = len(self.dataframe["movie_title"])
        self.quartiles = []
        for cut in [0.25, 0.5, 0.75]:
            idx = 0 if n_points < 2 else round(n_points * cut)
            self.quartiles.append(self.dataframe["gross"][idx])
        self.next(self.join)

    @step
    def join(self, inputs):
        """One dictionary of every genre's statistics."""
        self.genre_stats = {
            inp.genre.lower(): {"quartiles": inp.quartiles, "dataframe": inp.dataframe} for inp in inputs
        }
        self.next(self.end)

    @step
    def end(self):
        """Nothing left to do."""
        pass


if __name__ == "__main__":
    MovieStatsFlow()
