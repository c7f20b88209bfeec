"""Stop sequences as OpenAI defines them: the answer ends before the first stop string, which is not
returned. Backends differ (llama.cpp drops the stop string, transformers' `stop_strings` keeps it), so
the server trims the stream itself; text that could be the start of a stop string is held back
until the next piece shows whether it is."""

from __future__ import annotations


class StopTrimmer:
    def __init__(self, stops: tuple[str, ...] | list[str]):
        self.stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The text that is safe to send now (possibly empty)."""
        if self.stopped:
            return ""
        text = self._held + piece
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped, self._held = True, ""
            return text[:cut]
        keep = self._longest_partial(text)
        self._held = text[len(text) - keep:] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """What was held back, once the stream has ended without completing a stop string."""
        text, self._held = ("" if self.stopped else self._held), ""
        return text

    def _longest_partial(self, text: str) -> int:
        """Length of the longest tail of `text` that is a proper prefix of some stop string."""
        best = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best
