"""Metaflow's playlist sequel (03-playlist-redux), in its shape: it reads MovieStatsFlow's latest
successful run through the client."""

from lamina import FlowSpec, Parameter, step


class PlayListFlow(FlowSpec):
    """A playlist from the top-grossing movies of a genre, using MovieStatsFlow's statistics."""

    genre = Parameter("genre", help="Filter movies for a particular genre.", default="Sci-Fi")
    recommendations = Parameter("recommendations", help="How many movies to recommend.", default=5)

    @step
    def start(self):
        """Take the statistics of the latest successful MovieStatsFlow run."""
        from lamina import Flow, get_metadata

        print("Using metadata provider: %s" % get_metadata())
        run = Flow("MovieStatsFlow").latest_successful_run
        print("Using analysis from '%s'" % str(run))
        self.genre_stats = run.data.genre_stats
        self.next(self.bonus_movie, self.genre_movies)

    @step
    def bonus_movie(self):
        """A random movie that is not of the genre."""
        import random

        df = {"movie_title": [], "genres": []}
        for genre, data in self.genre_stats.items():
            if genre != self.genre.lower():
                for row in range(len(data["dataframe"]["movie_title"])):
                    if self.genre.lower() not in data["dataframe"]["genres"][row].lower():
                        df["movie_title"].append(data["dataframe"]["movie_title"][row])
                        df["genres"].append(data["dataframe"]["genres"][row])
        index = random.randint(0, len(df["genres"]) - 1)
        self.bonus = (df["movie_title"][index], df["genres"][index])
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
