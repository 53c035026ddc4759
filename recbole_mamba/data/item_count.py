"""A stand-in for a RecBole dataset where a sequential model is built without data (tests, benchmarks)."""


class ItemCount:
    """The one thing RecBole's sequential models read from a dataset at construction: the number of items."""

    def __init__(self, n_items):
        self.n_items = n_items

    def num(self, field):
        return self.n_items
