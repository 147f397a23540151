"""synopsis-keywords: a Tessera plugin written in Python (componentize-py), to show that the
contract is language-neutral. It tags a synopsis's keywords: the most frequent words that are
not stop words, with how often they occur as evidence, and logs with fields how many it found.

Config (the manifest's [config]): `top` (default 5), the number of keywords; `min-length`
(default 4), the shortest word counted.
"""

import re
from collections import Counter

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, log, types

STOP_WORDS = {
    "the", "and", "for", "with", "that", "this", "from", "into", "their", "they", "them",
    "when", "where", "while", "which", "who", "whom", "whose", "what", "will", "would", "must",
    "have", "has", "had", "been", "being", "were", "was", "are", "is", "his", "her", "hers",
    "its", "our", "your", "after", "before", "over", "under", "about", "than", "then", "there",
    "these", "those", "until", "upon", "only", "also", "just", "more", "most", "some", "such",
    "each", "every", "both", "other", "again", "once", "back", "last", "first", "one", "two",
}


def setting(key: str, default: int) -> int:
    value = config.get(key)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise Err(types.PluginError_InvalidInput(f"config {key} = {value!r} is not a whole number"))


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="synopsis-keywords",
            version="0.1.0",
            tags=["keyword"],
            embeddings=[],
            token_sequences=[],
            after=[],
        )

    def analyze(self, title, assets, prior_tags) -> types.Analysis:
        top = setting("top", 5)
        min_length = setting("min-length", 4)
        words = [
            w
            for w in re.findall(r"[^\W\d_]+", title.synopsis.lower())
            if len(w) >= min_length and w not in STOP_WORDS
        ]
        counts = Counter(words)
        # Most frequent first; ties in order of first appearance (Counter keeps insertion order).
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        tags = [
            types.Tag(
                name="keyword",
                value=word,
                confidence=round(n / ranked[0][1], 4),
                span=None,
                evidence=f"{n} of {len(words)} counted words",
            )
            for word, n in ranked
        ]
        log.log(log.Level.DEBUG, "keywords", [("found", str(len(tags))), ("title", title.id)])
        return types.Analysis(tags=tags, embeddings=[], token_sequences=[])
