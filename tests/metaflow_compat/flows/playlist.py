"""Metaflow's playlist tutorial (01-playlist), in its shape: IncludeFile, Parameter, a branch."""

from lamina import FlowSpec, IncludeFile, Parameter, step


def script_path(filename):
    """A file next to this flow, whatever the working directory."""
    import os

    return os.path.join(os.path.dirname(__file__), filename)


class PlayListFlow(FlowSpec):
    """Build a playlist of movies in a genre, plus one bonus movie from another genre."""

    movie_data = IncludeFile(
        "movie_data", help="The path to a movie metadata file.", default=script_path("movies.csv")
    )
    genre = Parameter("genre", help="Filter movies for a particular genre.", default="Sci-Fi")
    recommendations = Parameter("recommendations", help="How many movies to recommend.", default=5)

    @step
    def start(self):
        """Read two columns of the CSV into lists."""
        import csv

        columns = ["movie_title", "genres"]
        self.dataframe = {col: [] for col in columns}
        for row in csv.DictReader(self.movie_data.splitlines()):
            for col in columns:
                self.dataframe[col].append(row[col])
        self.next(self.bonus_movie, self.genre_movies)

    @step
    def bonus_movie(self):
        """Pick one movie at random from the other genres."""
        from random import choice

        movies = [
            (movie, genres)
            for movie, genres in zip(self.dataframe["movie_title"], self.dataframe["genres"])
            if self.genre.lower() not in genres.lower()
        ]
        self.bonus = choice(movies)
        self.next(self.join)

    @step
    def genre_movies(self):
        """The movies of the genre, shuffled."""
        from random import shuffle

        self.movies = [
            movie
            for movie, genres in zip(self.dataframe["movie_title"], self.dataframe["genres"])
            if self.genre.lower() in genres.lower()
        ]
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
