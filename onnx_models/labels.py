"""Label sets and the emotion -> sentiment map."""

EMOTIONS = ("angry", "calm", "disgust", "fearful", "happy", "neutral", "sad", "surprised")
SHARED_EMOTIONS = ("angry", "disgust", "fearful", "happy", "neutral", "sad")   # in both corpora
EMOVO_EMOTIONS = ("angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised")
SENTIMENTS = ("negative", "neutral", "positive")
# Surprise can be good or bad news: it gets no sentiment label (masked out of the sentiment loss and
# of the sentiment evaluation), and the derived sentiment ignores its probability.
SENTIMENT_OF = {"angry": 0, "disgust": 0, "fearful": 0, "sad": 0, "bored": 0, "neutral": 1, "calm": 1, "happy": 2}
NO_SENTIMENT = -1


def sentiment_index(emotion: str) -> int:
    return SENTIMENT_OF.get(emotion, NO_SENTIMENT)
