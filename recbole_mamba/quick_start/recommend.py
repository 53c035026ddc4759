"""Top-k recommendations from a trained checkpoint, by user token: ``python -m recbole_mamba.recommend``.

    python -m recbole_mamba.recommend --checkpoint saved/RecMamba-<date>.pth --user 196 [--topk 10]
        [--new-items 242,302] [--exclude-seen]
    python -m recbole_mamba.recommend --checkpoint ... --users-file users.txt      (one user token a line)

Prints one JSON line per user, ``{"user": ..., "items": [...], "scores": [...]}``, best first, in the dataset's own
tokens. A user's context is their history in the dataset the model was trained on, then ``--new-items`` (the same
for every user), cut to the latest ``MAX_ITEM_LIST_LENGTH`` items as in evaluation. Models with recurrent inference
(RecMamba: ``prefill``/``step``) prefill the history and fold the new items in with ``step``; any other RecBole
sequential model recomputes over the context (``full_sort_predict``). ``--exclude-seen`` drops the items of the
whole history and the new items. Users are scored ``eval_batch_size`` at a time. Unknown user or item tokens are
one-line errors naming them (exit status 2).
"""

import argparse
import json
import sys
import warnings

import torch
from recbole.data.interaction import Interaction

from recbole_mamba.data import LifelongSequentialDataset
from recbole_mamba.errors import InputError
from recbole_mamba.quick_start.loading import load_data_and_model


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise InputError("command line", message, "see python -m recbole_mamba.recommend --help")


def build_parser():
    parser = _Parser(prog="python -m recbole_mamba.recommend", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a .pth file saved by run.py")
    users = parser.add_mutually_exclusive_group(required=True)
    users.add_argument("--user", help="a user token, as in the dataset's .inter file")
    users.add_argument("--users-file", help="a text file of user tokens, one a line")
    parser.add_argument("--topk", type=int, default=10, help="number of items per user (default 10)")
    parser.add_argument("--new-items", default="", help="comma-separated item tokens the users just interacted with")
    parser.add_argument("--exclude-seen", action="store_true", help="leave out items the user has interacted with")
    return parser


def _ids(dataset, field, tokens, where):
    """Internal ids of ``tokens`` in ``field``; an :class:`InputError` naming every unknown token."""
    known = dataset.field2token_id[field]
    unknown = [token for token in dict.fromkeys(tokens) if token not in known or known[token] == 0]
    if unknown:
        shown = ", ".join(repr(token) for token in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise InputError(where, f"unknown {field} token{'s' if len(unknown) > 1 else ''} {shown}",
                         f"give {field} values as they appear in the {dataset.dataset_name} dataset")
    return torch.tensor([known[token] for token in tokens], dtype=torch.long)


class Recommender:
    """A trained sequential model with its dataset, answering top-k queries by user token."""

    def __init__(self, config, model, dataset):
        self.config, self.model, self.dataset = config, model.eval(), dataset
        self.max_len = config["MAX_ITEM_LIST_LENGTH"]
        # after build(), a lifelong dataset holds every interaction sorted by user, then time
        self._users = dataset.inter_feat[dataset.uid_field]
        self._items = dataset.inter_feat[dataset.iid_field]

    @classmethod
    def from_checkpoint(cls, path):
        config, model, dataset, *_ = load_data_and_model(path)
        if not isinstance(dataset, LifelongSequentialDataset):
            raise InputError(path, f"recommending needs the lifelong dataset of sequential models (this run used "
                             f"{type(dataset).__name__})", "train with lifelong_sequences: True (the default)")
        return cls(config, model, dataset)

    def user_ids(self, tokens, where):
        return _ids(self.dataset, self.dataset.uid_field, tokens, where)

    def item_ids(self, tokens, where):
        return _ids(self.dataset, self.dataset.iid_field, tokens, where)

    def history(self, user_id):
        """The user's items, oldest first."""
        start = int(torch.searchsorted(self._users, user_id))
        end = int(torch.searchsorted(self._users, user_id, right=True))
        return self._items[start:end]

    def recommend(self, user_ids, new_items=None, topk=10, exclude_seen=False):
        """Top-k (item ids (users, k), scores (users, k)) after each user's history and ``new_items`` (1-d ids)."""
        new_items = torch.zeros(0, dtype=torch.long) if new_items is None else new_items
        histories = [torch.cat([self.history(user), new_items]) for user in user_ids.tolist()]
        contexts = [history[-self.max_len:] for history in histories]
        lengths = torch.tensor([len(context) for context in contexts])
        item_seq = torch.zeros(len(contexts), int(lengths.max()), dtype=torch.long)
        for row, context in enumerate(contexts):
            item_seq[row, : len(context)] = context
        device = self.config["device"]
        with torch.no_grad():
            scores = self._scores(user_ids.to(device), item_seq.to(device), lengths.to(device), len(new_items))
        scores[:, 0] = -torch.inf  # padding
        if exclude_seen:
            for row, history in enumerate(histories):
                scores[row, history.to(device)] = -torch.inf
        top = torch.topk(scores, topk, dim=1)
        return top.indices.cpu(), top.values.cpu()

    def _scores(self, user_ids, item_seq, lengths, n_new):
        """Scores of every item (users, n_items) for the right-padded contexts ``item_seq``."""
        model = self.model
        if hasattr(model, "prefill") and hasattr(model, "step"):
            steps = min(n_new, int(lengths.min()) - 1)  # the new items at each context's end, leaving one to prefill
            if steps > 0:
                ends = lengths[:, None] - steps + torch.arange(steps, device=lengths.device)
                _, state = model.prefill(item_seq, lengths - steps)
                representation, _ = model.step(state, item_seq.gather(1, ends))
            else:
                representation, _ = model.prefill(item_seq, lengths)
            return model.score_items(representation, item_seq, lengths)  # as its full_sort_predict
        batch = Interaction({model.USER_ID: user_ids, model.ITEM_SEQ: item_seq, model.ITEM_SEQ_LEN: lengths})
        return model.full_sort_predict(batch.to(item_seq.device)).view(len(user_ids), -1)


def _read_users(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip()]
    except OSError as error:
        raise InputError(path, f"cannot read the users file ({error.strerror})", "give a text file of user tokens, "
                         "one a line") from None


def answer(args):
    """Print the recommendations of the parsed command line ``args``, one JSON line per user."""
    tokens = [args.user] if args.user is not None else _read_users(args.users_file)
    where = "--user" if args.user is not None else args.users_file
    if not tokens:
        raise InputError(where, "no user tokens", "write one user token a line")
    recommender = Recommender.from_checkpoint(args.checkpoint)
    n_items = recommender.dataset.item_num - 1  # without the padding id
    if not 1 <= args.topk <= n_items:
        raise InputError("--topk", f"{args.topk} is not between 1 and the number of items ({n_items})",
                         "give a smaller --topk")
    users = recommender.user_ids(tokens, where)
    new_tokens = [token.strip() for token in args.new_items.split(",") if token.strip()]
    new_items = recommender.item_ids(new_tokens, "--new-items")
    batch_size = recommender.config["eval_batch_size"]
    field = recommender.dataset.iid_field
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        items, scores = recommender.recommend(batch, new_items, args.topk, args.exclude_seen)
        for token, row_items, row_scores in zip(tokens[start : start + batch_size], items, scores):
            line = {"user": token, "items": recommender.dataset.id2token(field, row_items).tolist(),
                    "scores": [round(score, 6) for score in row_scores.tolist()]}
            print(json.dumps(line))


def main(argv=None):
    """The command line; returns the exit status: 2 on bad input (one line); anything else is a bug and raises."""
    # RecBole's dataset loading warns about its own use of pandas and torch: noise to someone asking for items
    warnings.filterwarnings("ignore", module=r"recbole\.")
    try:
        answer(build_parser().parse_args(sys.argv[1:] if argv is None else argv))
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
