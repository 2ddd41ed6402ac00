"""Metaflow's playlist-plus tutorial (04-playlist-plus), in its shape: @conda_base for the flow,
@conda with a package that only one step gets, and the client reading MovieStatsFlow.

One change besides the import: editdistance 0.8.1 instead of 0.5.3, which the Python index only
has as a source package that no longer builds on Python 3.11 (conda-forge ships builds of it).
"""

from lamina import FlowSpec, Parameter, conda, conda_base, step


def get_python_version():
    """The tutorial pins the Python of the conda environment."""
    import platform

    versions = {"2": "2.7.15", "3": "3.9.10"}
    return versions[platform.python_version_tuple()[0]]


@conda_base(python=get_python_version())
class PlayListFlow(FlowSpec):
    """A playlist whose bonus movie is the title closest to a hint, by edit distance."""

    genre = Parameter("genre", help="Filter movies for a particular genre.", default="Sci-Fi")
    hint = Parameter("hint", help="Give a hint to the bonus movie algorithm.", default="Metaflow Release")
    recommendations = Parameter("recommendations", help="How many movies to recommend.", default=5)

    @step
    def start(self):
        """Take the movies and statistics of the latest successful MovieStatsFlow run."""
        from lamina import Flow, get_metadata

        print("Using metadata provider: %s" % get_metadata())
        run = Flow("MovieStatsFlow").latest_successful_run
        print("Using analysis from '%s'" % str(run))
        self.dataframe = run["start"].task.data.dataframe
        self.genre_stats = run.data.genre_stats
        self.next(self.bonus_movie, self.genre_movies)

    @conda(libraries={"editdistance": "0.8.1"})
    @step
    def bonus_movie(self):
        """The title closest to the hint; editdistance exists in this step's environment only."""
        import editdistance

        def _edit_distance(movie_title):
            return editdistance.eval(self.hint, movie_title)

        distance = [_edit_distance(title) for title in self.dataframe["movie_title"]]
        index = distance.index(min(distance))
        self.bonus = (self.dataframe["movie_title"][index], self.dataframe["genres"][index])
        self.next(self.join)

    @step
    def genre_movies(self):
        """The genre's movies in its top quartile of gross, shuffled."""
        from random import shuffle

        genre = self.genre.lower()
        if genre not in self.genre_stats:
            self.movies = []
        else:
            df = self.genre_stats[genre]["dataframe"]
            quartiles = self.genre_stats[genre]["quartiles"]
            self.movies = [df["movie_title"][i] for i, g in enumerate(df["gross"]) if g >= quartiles[-1]]
        shuffle(self.movies)
        self.next(self.join)

    @step
    def join(self, inputs):
        """Take the playlist and the bonus from their branches."""
        self.playlist = inputs.genre_movies.movies
        self.bonus = inputs.bonus_movie.bonus
        self.next(self.end)

    @step
    def end(self):
        """Print the playlist and the bonus movie."""
        print("Playlist for movies in genre '%s'" % self.genre)
        for pick, movie in enumerate(self.playlist, start=1):
            print("Pick %d: '%s'" % (pick, movie))
            if pick >= self.recommendations:
                break
        print("Bonus Pick: '%s' from '%s'" % (self.bonus[0], self.bonus[1]))


if __name__ == "__main__":
    PlayListFlow()
