"""The light model profile: one network of the shipped three-network ensemble, for workers that must carry more calls
per core than the ensemble allows.

    python -m onnx_models.light_profile onnx_models --out onnx_models/light --member 0

The shipped graphs average the probabilities of three seed networks behind one log-mel front-end. Keeping one of
them (its weights, INT8 scales and folded front-end untouched, the other two pruned) halves the models' CPU per window
(the front-end is shared, so not a third). Network 0 was fixed before anything was measured: all three were trained
on every speaker, so no held-out data is left to choose between them. What it costs in accuracy and what it buys in
calls per core is in MODEL_CARD.md ("Light profile"). Workers select it with ``CALLPULSE_MODEL_PROFILE=light``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import onnx
from onnx import helper

from .manifest import rewrite_folder

MEMBER_PREFIX = "/model/Unsqueeze_"     # the export stacks each network's probabilities, then averages them


def _member_stacks(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The Concat nodes that stack the networks' probabilities before the mean (one per output head)."""
    return [n for n in graph.node if n.op_type == "Concat" and n.name.startswith("/model/Concat_") and len(n.input) > 1
            and all(i.startswith(MEMBER_PREFIX) for i in n.input)]


def keep_member(model: onnx.ModelProto, member: int) -> onnx.ModelProto:
    """The ensemble graph with only network ``member`` feeding the mean; the nodes and initialisers that nothing
    reads any more are dropped. Raises on a graph that is not an ensemble or has no such member."""
    g = model.graph
    stacks = _member_stacks(g)
    if not stacks:
        raise ValueError("not an ensemble graph: no Concat stacks the networks' probabilities before their mean")
    sizes = {len(n.input) for n in stacks}
    if len(sizes) != 1 or not 0 <= member < min(sizes):
        raise ValueError(f"member must be in 0..{min(sizes) - 1} (networks per head: {sorted(sizes)}), got {member}")
    for node in stacks:
        keep = node.input[member]
        del node.input[:]
        node.input.append(keep)
    needed = {o.name for o in g.output}
    kept = []
    for node in reversed(g.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(node.input)
    del g.node[:]
    g.node.extend(reversed(kept))
    inits = [i for i in g.initializer if i.name in needed]
    del g.initializer[:]
    g.initializer.extend(inits)
    # shapes recorded for the export's graph: the stacks now hold one network, and the pruned tensors are gone
    stale = {o for n in stacks for o in n.output}
    infos = [v for v in g.value_info if v.name in needed and v.name not in stale]
    del g.value_info[:]
    g.value_info.extend(infos)
    onnx.checker.check_model(model)
    return model


def mark_light(model: onnx.ModelProto, member: int) -> None:
    """Metadata of the cut graph: its own ``weights_id`` (the same in both files, so the workers still run one graph
    for both scores), a ``-light`` version and an architecture that says which network it is."""
    meta = {e.key: e.value for e in model.metadata_props}
    meta["weights_id"] = f"{meta.get('weights_id', 'unknown')}-n{member}"
    meta["model_version"] = f"{meta['model_version']}-light"
    meta["architecture"] = f"network {member} of the '{meta.get('architecture', 'ensemble')}' ensemble"
    meta["description"] = f"light profile, one network of the ensemble: {meta.get('description', '')}"
    helper.set_model_props(model, meta)


def build(src: Path, out: Path, member: int) -> dict:
    def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
        model = keep_member(model, member)
        mark_light(model, member)
        return model

    return rewrite_folder(src, out, rewrite)[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", type=Path, help="folder with the ensemble's emotion.onnx and sentiment.onnx")
    p.add_argument("--out", type=Path, required=True, help="folder for the one-network files and their manifest.json")
    p.add_argument("--member", type=int, default=0)
    args = p.parse_args(argv)
    print(json.dumps(build(args.src, args.out, args.member), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
