"""All-position (seq2seq) training for sequential models that expose ``forward_all``.

A model mixing in :class:`AllPositionTraining` before RecBole's ``SequentialRecommender`` trains on RecBole's usual
batches (loss at the last position: ``POS_ITEM_ID``, plus ``NEG_ITEM_ID`` for BPR/BCE) and on the lifelong
dataloader's seq2seq batches (``fields.TARGET_ITEM_LIST`` present: loss at every position whose target is not 0,
averaged over them; BPR/BCE take ``fields.NEG_ITEM_LIST``, one negative per position).

Losses (``loss_type``):

- ``CE``: softmax over all items, built in slices of at most ``ce_slice_logits`` logits, forward and backward, so
  memory stays bounded for long sequences and large catalogues; its cost grows with the catalogue.
- ``sampled_softmax``: softmax over the positive and ``num_negatives`` negatives shared by the batch, drawn here
  (RecBole's sampler is not involved) ``uniform``\\ly or by ``popularity`` (target counts of the training split)
  (``negative_distribution``). A negative's logit is corrected by ``-log(num_negatives * q)``, ``q`` its sampling
  probability (log-Q correction, Yi et al., RecSys 2019), so the negatives estimate the full softmax's
  normaliser; a negative equal to a row's positive is masked out of that row.
- ``BPR``: ``-log sigmoid(pos - neg)`` with one sampled negative.
- ``BCE``: ``-log sigmoid(pos) - log sigmoid(-neg)`` with one sampled negative (SASRec's and the RecMamba paper's).

``sparse_item_embedding`` (``auto``, True, False): the item embedding gets sparse gradients (only the rows a step
touches), which the trainer (:class:`recbole_mamba.quick_start.trainer.SafeTraining`) updates with a sparse
optimizer; ``auto`` turns it on when possible for catalogues of at least ``sparse_item_embedding_min_items`` items.

The model provides ``forward_all(item_seq) -> (batch, L, H)`` and ``item_embedding`` (scores are dot products with
it); the mixin derives ``forward``, the losses, ``predict``, ``full_sort_predict`` and ``full_sort_scores`` (full
ranking in slices of items, for the trainer's bounded-memory evaluation). Config keys (defaults in
``properties/overall.yaml``): ``loss_type``, ``ce_slice_logits``, ``num_negatives``, ``negative_distribution``,
``sparse_item_embedding``, ``sparse_item_embedding_min_items``, ``history_copy``.

``history_copy`` adds learned repeat scores to the logits (:mod:`recbole_mamba.model.history_copy`): every score the
mixin computes (every loss, ``predict``, full ranking, :meth:`AllPositionTraining.score_items` for serving) then
reads the history too.

Right padding beyond a batch's longest history is cut before the model runs (exact for these causal models), so a
large ``MAX_ITEM_LIST_LENGTH`` costs only what the histories fill.
"""

import math

import torch
import torch.nn.functional as F
from recbole.model.loss import BPRLoss
from torch.utils.checkpoint import checkpoint

from recbole_mamba.data import fields
from recbole_mamba.errors import InputError, check_choice
from recbole_mamba.model.history_copy import HistoryCopy

LOSS_TYPES = ("CE", "BPR", "sampled_softmax", "BCE")
# The RecBole loss type each one is fed like: CE -> pointwise batches, no sampled negatives; BPR -> pairwise
# batches with NEG_ITEM_ID (RecBole's Config and its SASRec/GRU4Rec constructors know only these two).
RECBOLE_LOSS_TYPES = {"CE": "CE", "BPR": "BPR", "sampled_softmax": "CE", "BCE": "BPR"}
COPY_SLICES = 8  # history_copy's losses: rows sorted by position and cut into at least this many slices
PAIRWISE_LOSSES = ("BPR", "BCE")  # one sampled negative per target, from the dataloader
NEGATIVE_DISTRIBUTIONS = ("uniform", "popularity")
SPARSE_CHOICES = ("auto", True, False)


class _SlicedSoftmaxCrossEntropy(torch.autograd.Function):
    """Per-row ``cross_entropy(hidden @ weight.T, targets)`` with the logits built ``rows`` rows at a time.

    Nothing of size rows x items is kept for the backward: it recomputes each slice's logits from ``hidden``,
    ``weight`` and the saved log-sum-exps. Computed in float32 (at least), outside autocast.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, rows):
        dtype = torch.promote_types(torch.promote_types(hidden.dtype, weight.dtype), torch.float32)
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            h, w = hidden.to(dtype), weight.to(dtype)
            losses = h.new_empty(h.shape[0])
            lse = h.new_empty(h.shape[0])
            for start in range(0, h.shape[0], rows):
                part = slice(start, start + rows)
                logits = h[part] @ w.T
                lse[part] = torch.logsumexp(logits, dim=-1)
                losses[part] = lse[part] - logits.gather(1, targets[part, None]).squeeze(1)
        ctx.save_for_backward(hidden, weight, targets, lse)
        ctx.rows = rows
        return losses

    @staticmethod
    def backward(ctx, grad_losses):
        hidden, weight, targets, lse = ctx.saved_tensors
        rows = ctx.rows
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            dtype = lse.dtype
            h, w, grad_losses = hidden.to(dtype), weight.to(dtype), grad_losses.to(dtype)
            grad_h = torch.empty_like(h)
            grad_w = torch.zeros_like(w)
            for start in range(0, h.shape[0], rows):
                part = slice(start, start + rows)
                # d loss / d logits = (softmax - onehot(target)) * grad, computed in place in the logits buffer
                probs = torch.sub(h[part] @ w.T, lse[part, None]).exp_()
                probs.scatter_add_(1, targets[part, None], probs.new_full((probs.shape[0], 1), -1.0))
                probs.mul_(grad_losses[part, None])
                torch.matmul(probs, w, out=grad_h[part])
                grad_w.addmm_(probs.T, h[part])
        return grad_h.to(hidden.dtype), grad_w.to(weight.dtype), None, None


def slice_rows(max_logits, scores_per_row, history_length=1):
    """Rows per slice so that a slice holds at most ``max_logits`` scores (and as many history entries)."""
    return max(1, int(max_logits) // max(1, scores_per_row, history_length))


def sliced_cross_entropy(hidden, weight, targets, max_logits):
    """Per-row CE of the scores ``hidden @ weight.T`` (rows x items) against ``targets``, sliced by rows.

    hidden (rows, H), weight (items, H), targets (rows,) -> (rows,) losses; at most ``max_logits`` logits exist at
    a time (at least one row).
    """
    rows = slice_rows(max_logits, weight.shape[0])
    return _SlicedSoftmaxCrossEntropy.apply(hidden, weight, targets, rows)


def sampled_softmax_loss(hidden, positive_emb, positives, negative_emb, negatives, negative_log_q,
                         positive_extra=0.0, negative_extra=0.0):
    """Per-row loss of the softmax over each row's positive and the shared negatives, log-Q corrected.

    hidden (rows, H), positive_emb (rows, H), positives (rows,), negative_emb (N, H), negatives (N,),
    negative_log_q (N,) log sampling probabilities -> (rows,). Negative logits get ``-log(N * q)``; negatives equal
    to the row's positive are left out of that row. ``positive_extra`` (rows,) and ``negative_extra`` (rows, N) are
    added to the logits (repeat scores).
    """
    positive_logit = ((hidden * positive_emb).sum(-1) + positive_extra).unsqueeze(1)
    correction = negative_log_q + math.log(negatives.shape[0])
    negative_logits = hidden @ negative_emb.T - correction + negative_extra
    negative_logits = negative_logits.masked_fill(negatives == positives[:, None], -math.inf)
    logits = torch.cat([positive_logit, negative_logits], dim=1)
    return torch.logsumexp(logits, dim=1) - positive_logit.squeeze(1)


def use_sparse_item_embedding(config, n_items):
    """Whether the item embedding takes sparse gradients: ``sparse_item_embedding`` checked against what it needs.

    True needs a loss that reads only some items' embeddings (not CE), a learner with a sparse optimizer
    (``SafeTraining``'s ``SPARSE_OPTIMIZERS``), no ``weight_decay`` and no ``clip_grad_norm`` (torch's clipping
    takes no sparse gradients); if one is missing, True is an :class:`InputError` and ``auto`` stays dense.
    ``auto`` is sparse from ``sparse_item_embedding_min_items`` items on.
    """
    from recbole_mamba.quick_start.trainer import SPARSE_OPTIMIZERS

    choice = check_choice("sparse_item_embedding", config["sparse_item_embedding"], SPARSE_CHOICES)
    if choice is False:
        return False
    learner = str(config["learner"]).lower()
    blockers = [
        (config["loss_type"] == "CE", "loss_type CE reads every item's embedding", "loss_type sampled_softmax"),
        (learner not in SPARSE_OPTIMIZERS, f"learner {learner} has no sparse optimizer",
         f"learner {' or '.join(SPARSE_OPTIMIZERS)}"),
        (bool(config["weight_decay"]), "the sparse optimizers take no weight_decay", "weight_decay 0"),
        (bool(config["clip_grad_norm"]), "clip_grad_norm does not take sparse gradients", "clip_grad_norm ~"),
    ]
    blocked = [(problem, fix) for blocks, problem, fix in blockers if blocks]
    if choice == "auto":
        return not blocked and n_items >= config["sparse_item_embedding_min_items"]
    if blocked:
        problem, fix = blocked[0]
        raise InputError("sparse_item_embedding", f"True, but {problem}",
                         f"set {fix}, or sparse_item_embedding auto or False")
    return True


class _RecBoleLossView:
    """``config`` as RecBole's SASRec/GRU4Rec constructors read it: each loss type reads as the RecBole one it is
    fed like (they accept only CE and BPR, and only build a loss module this mixin does not use)."""

    def __init__(self, config):
        self._config = config

    def __getitem__(self, key):
        value = self._config[key]
        return RECBOLE_LOSS_TYPES.get(value, value) if key == "loss_type" else value


class AllPositionTraining:
    """``forward``, losses, ``predict`` and full ranking for a model with ``forward_all``; see the module
    docstring. A model builds its ``item_embedding`` with ``sparse=self.sparse_item_embedding``."""

    OPTION_CHOICES = {"loss_type": LOSS_TYPES, "negative_distribution": NEGATIVE_DISTRIBUTIONS,
                      "sparse_item_embedding": SPARSE_CHOICES}  # also checked before a run starts
    RECBOLE_LOSS_TYPES = RECBOLE_LOSS_TYPES  # read by recbole_mamba.quick_start.Config

    def __init__(self, config, dataset):
        loss_type = check_choice("loss_type", config["loss_type"], LOSS_TYPES)
        super().__init__(_RecBoleLossView(config), dataset)
        self.loss_type = loss_type
        self.loss_fct = BPRLoss() if loss_type == "BPR" else None
        self.ce_slice_logits = config["ce_slice_logits"]
        self.sparse_item_embedding = use_sparse_item_embedding(config, self.n_items)
        self.num_negatives = config["num_negatives"]
        self.negative_distribution = check_choice("negative_distribution", config["negative_distribution"],
                                                  NEGATIVE_DISTRIBUTIONS)
        # popularity sampling: cumulative target counts of the training split (item 0, padding, counts 0)
        self.register_buffer("negative_cdf", self._popularity_cdf(dataset), persistent=False)
        # the representation's width: RecBole's models (SASRec, GRU4Rec) have built their item embedding by now
        width = self.item_embedding.embedding_dim if hasattr(self, "item_embedding") else config["hidden_size"]
        self.history_copy = HistoryCopy(width) if config["history_copy"] else None

    def _popularity_cdf(self, dataset):
        if self.loss_type != "sampled_softmax" or self.negative_distribution != "popularity":
            return None
        counts = torch.zeros(self.n_items, dtype=torch.float64)
        for item, count in dataset.counter(self.ITEM_ID).items():
            counts[int(item)] = count
        counts[0] = 0
        if not counts.sum() > 0:
            raise InputError("negative_distribution", "popularity, but the training split has no item counts",
                             "use negative_distribution uniform")
        return counts.cumsum(0)

    def sample_negatives(self):
        """``num_negatives`` item ids (never 0) shared by the batch and their log sampling probabilities."""
        device = self.item_embedding.weight.device
        if self.negative_cdf is None:
            negatives = torch.randint(1, self.n_items, (self.num_negatives,), device=device)
            return negatives, torch.full(negatives.shape, -math.log(self.n_items - 1), device=device)
        cdf = self.negative_cdf
        draws = torch.rand(self.num_negatives, dtype=cdf.dtype, device=device) * cdf[-1]
        negatives = torch.searchsorted(cdf, draws, right=True).clamp_(max=self.n_items - 1)
        counts = cdf[negatives] - cdf[negatives - 1]
        return negatives, (counts.log() - cdf[-1].log()).float()

    def forward(self, item_seq, item_seq_len):
        """The hidden state after the last real item: (batch, H) at position ``item_seq_len - 1``."""
        return self.gather_indexes(self.forward_all(trim_padding(item_seq, item_seq_len)), item_seq_len - 1)

    def score_items(self, representation, item_seq=None, item_seq_len=None, start=0, stop=None):
        """Scores of items ``start .. stop - 1`` (default: all) for user representations (batch, H), as
        ``full_sort_predict`` gives them; with ``history_copy`` the histories (item_seq (batch, T) right-padded,
        item_seq_len (batch,)) add their repeat scores."""
        weight = self.item_embedding.weight[start:stop]
        scores = representation @ weight.T
        if self.history_copy is None:
            return scores
        if item_seq is None:
            raise ValueError("history_copy scores need the users' histories (item_seq, item_seq_len)")
        return scores + self.history_copy.dense(representation, item_seq, item_seq_len - 1, start,
                                                start + weight.shape[0])

    def _scores_loss(self, hidden, pos_items, neg_items, negatives, log_q, item_seq=None, positions=None):
        """Mean ``loss_type`` loss of hidden (rows, H) against pos_items (rows,) (neg_items (rows,) for BPR/BCE,
        the shared negatives and their log probabilities for sampled_softmax), all logits built at once; with
        ``item_seq`` (rows, T) and ``positions`` (rows,), each logit gets the repeat scores of that history."""
        copy = self.history_copy if item_seq is not None else None
        if self.loss_type == "CE":
            logits = hidden.float() @ self.item_embedding.weight.float().T
            if copy is not None:
                logits = logits + copy.dense(hidden, item_seq, positions, 0, self.n_items)
            return F.cross_entropy(logits, pos_items)
        repeats = (lambda items: copy.at(hidden, item_seq, positions, items)) if copy is not None else (lambda _: 0.0)
        hidden = hidden.float()
        pos_emb = self.item_embedding(pos_items).float()
        if self.loss_type == "sampled_softmax":
            negative_repeats = 0.0 if copy is None else copy.among(hidden, item_seq, positions, negatives)
            return sampled_softmax_loss(hidden, pos_emb, pos_items, self.item_embedding(negatives).float(), negatives,
                                        log_q, repeats(pos_items), negative_repeats).mean()
        pos_score = (hidden * pos_emb).sum(-1) + repeats(pos_items)
        neg_score = (hidden * self.item_embedding(neg_items).float()).sum(-1) + repeats(neg_items)
        if self.loss_type == "BPR":
            return self.loss_fct(pos_score, neg_score)
        return (F.softplus(-pos_score) + F.softplus(neg_score)).mean()  # BCE: -log s(pos) - log(1 - s(neg))

    def _copy_loss_part(self, hidden, pos_items, neg_items, negatives, log_q, item_seq, rows, positions):
        """:meth:`_scores_loss` of one slice of rows with repeat scores, times its rows (a sum)."""
        return self._scores_loss(hidden, pos_items, neg_items, negatives, log_q, item_seq[rows], positions) * len(rows)

    def _copy_loss(self, hidden, pos_items, neg_items, negatives, log_q, history):
        """Mean loss with repeat scores, in slices of at most ``ce_slice_logits`` scores (and history entries); each
        slice is recomputed in the backward (checkpoint), so memory stays one slice. Rows go by position, in at least
        ``COPY_SLICES`` slices, and a slice reads the history only up to its last position (half the work)."""
        item_seq, rows, positions = history
        scores_per_row = {"CE": self.n_items, "sampled_softmax": self.num_negatives + 1}.get(self.loss_type, 1)
        order = torch.argsort(positions, stable=True)
        step = min(slice_rows(self.ce_slice_logits, scores_per_row, item_seq.shape[1]), -(-len(order) // COPY_SLICES))
        total = 0.0
        for start in range(0, len(order), step):
            part = order[start:start + step]
            width = int(positions[part].max()) + 1
            total = total + checkpoint(
                self._copy_loss_part, hidden[part], pos_items[part], None if neg_items is None else neg_items[part],
                negatives, log_q, item_seq[:, :width], rows[part], positions[part], use_reentrant=False)
        return total / len(order)

    def _loss(self, hidden, pos_items, neg_items=None, history=None):
        """Mean loss of hidden (rows, H) against pos_items (rows,) (and neg_items for BPR/BCE). ``history``:
        (item_seq (batch, T), each row's batch index, each row's position), for ``history_copy``."""
        negatives, log_q = self.sample_negatives() if self.loss_type == "sampled_softmax" else (None, None)
        if self.history_copy is not None:
            return self._copy_loss(hidden, pos_items, neg_items, negatives, log_q, history)
        if self.loss_type == "CE":
            return sliced_cross_entropy(hidden, self.item_embedding.weight, pos_items, self.ce_slice_logits).mean()
        return self._scores_loss(hidden, pos_items, neg_items, negatives, log_q)

    def calculate_loss(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        if fields.TARGET_ITEM_LIST in interaction:
            return self.calculate_seq2seq_loss(interaction)
        neg_items = None
        if self.loss_type in PAIRWISE_LOSSES:
            if self.NEG_ITEM_ID not in interaction:
                raise ValueError(f"loss_type {self.loss_type} needs sampled negatives ({self.NEG_ITEM_ID}) in the "
                                 f"batch: set train_neg_sample_args, e.g. {{distribution: uniform, sample_num: 1}}")
            neg_items = interaction[self.NEG_ITEM_ID]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        seq_output = self.forward(item_seq, item_seq_len)
        history = (item_seq, torch.arange(len(item_seq), device=item_seq.device), item_seq_len - 1)
        return self._loss(seq_output, interaction[self.POS_ITEM_ID], neg_items, history)

    def calculate_seq2seq_loss(self, interaction):
        """Loss over every position whose ``fields.TARGET_ITEM_LIST`` entry is not 0, averaged over them."""
        item_seq, targets = interaction[self.ITEM_SEQ], interaction[fields.TARGET_ITEM_LIST]
        if targets.shape != item_seq.shape:
            raise ValueError(f"{fields.TARGET_ITEM_LIST} must be shaped like the item sequence "
                             f"{tuple(item_seq.shape)}; got {tuple(targets.shape)}")
        item_seq = trim_padding(item_seq, interaction[self.ITEM_SEQ_LEN])
        targets = targets[:, :item_seq.shape[1]]  # 0 (no loss) beyond each history
        hidden = self.forward_all(item_seq)
        valid = targets > 0
        if not bool(valid.any()):
            return hidden.sum() * 0.0  # nothing to learn from; keeps the graph for backward()
        neg_items = None
        if self.loss_type in PAIRWISE_LOSSES:
            if fields.NEG_ITEM_LIST not in interaction:
                raise ValueError(f"loss_type {self.loss_type} with {fields.TARGET_ITEM_LIST} needs "
                                 f"{fields.NEG_ITEM_LIST} (one negative per position) in the batch")
            neg_items = interaction[fields.NEG_ITEM_LIST][:, :item_seq.shape[1]][valid]
        return self._loss(hidden[valid], targets[valid], neg_items, (item_seq, *valid.nonzero(as_tuple=True)))

    def predict(self, interaction):
        """Scores of ``ITEM_ID``; rows sharing a ``fields.SEQ_GROUP`` (sampled evaluation) are encoded once."""
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        if fields.SEQ_GROUP in interaction:
            groups, rows = torch.unique(interaction[fields.SEQ_GROUP], return_inverse=True)
            first = torch.full((len(groups),), len(rows), device=rows.device).scatter_reduce_(
                0, rows, torch.arange(len(rows), device=rows.device), "amin")
            seq_output = self.forward(item_seq[first], item_seq_len[first])[rows]
        else:
            seq_output = self.forward(item_seq, item_seq_len)
        items = interaction[self.ITEM_ID]
        scores = (seq_output * self.item_embedding(items)).sum(dim=-1)
        if self.history_copy is None:
            return scores
        return scores + self.history_copy.at(seq_output, item_seq, item_seq_len - 1, items)

    def full_sort_predict(self, interaction):
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        return self.score_items(self.forward(item_seq, item_seq_len), item_seq, item_seq_len)

    def full_sort_scores(self, interaction, items_per_slice):
        """``full_sort_predict`` in slices of the catalogue: yields (first item id, scores (batch, slice))."""
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        seq_output = self.forward(item_seq, item_seq_len)
        for start in range(0, self.item_embedding.weight.shape[0], items_per_slice):
            yield start, self.score_items(seq_output, item_seq, item_seq_len, start, start + items_per_slice)


def trim_padding(item_seq, item_seq_len):
    """``item_seq`` without the right-padding columns beyond the longest history (at least one column)."""
    return item_seq[:, :max(1, int(item_seq_len.max()))]
