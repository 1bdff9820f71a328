"""A whole synthetic study simulated and scored in memory, without a run directory.

Used where many independent studies are needed (``alignbf power``, ``bench/fpr.py``):

* each simulation is the study's turn loop (:class:`~alignbf.engine.conversation.
  Conversation`, the study's prompts, turn order and channel format) answered by the
  synthetic model of a world: the text :class:`~alignbf.engine.synthetic.SyntheticBackend`
  returns; the run store, response cache and cost accounting are left out, as nothing of
  them reaches a transcript;
* a simulation whose replies break the channel format too often ends ``invalid_output``
  and is not scored, as in a run; the others are scored as
  :func:`~alignbf.scoring.scores.compute_scores` scores a stored run: ``count_messages``
  with the study's echo filter, ``simulation_measures`` over the hit channels and
  ``add_indices``. The refusal columns are not computed (no shipped hypothesis reads them).

Seeds come from ``grid.expand(study, seed_salt=salt)``, as a locked run's do: a
simulation's seed depends on its cell, its replicate and the salt only, so a study of
``r`` replicates is the first ``r`` replicates of the same study with more.
``tests/integration/test_fpr_bench.py`` checks equality with ``alignbf run`` +
``alignbf score`` on the same seeds.
"""

from __future__ import annotations

import asyncio

import pandas as pd

from alignbf.config.prompts import load_prompts
from alignbf.config.study import Study
from alignbf.engine.conversation import Conversation, Transcript
from alignbf.engine.grid import SimSpec, expand
from alignbf.engine.synthetic import SyntheticModel
from alignbf.errors import ConfigError
from alignbf.scoring.indices import add_indices
from alignbf.scoring.measures import agent_measures, count_messages, simulation_measures
from alignbf.scoring.scores import Scores
from alignbf.transport.backend import ChatRequest, Completion

DESIGN_COLUMNS = [
    "sim_id",
    "language",
    "alignment_ratio",
    "individuation_ratio",
    "model",
    "replicate",
]
"""The design columns a study's simulation scores start with (id, cell, replicate)."""


def _transcripts(specs: list[SimSpec], model: SyntheticModel) -> list[Transcript]:
    async def ask(request: ChatRequest, digest: str) -> Completion:
        return Completion(text=model.reply(request))

    async def play() -> list[Transcript]:
        return [await Conversation(s, load_prompts(s.language)).run(ask) for s in specs]

    return asyncio.run(play())


def simulate_scores(study: Study, model: SyntheticModel, salt: str, agents: bool = False) -> Scores:
    """One whole study on the synthetic model, seeds salted with ``salt``, scored in memory.

    Returns the simulation scores (and agent scores when ``agents``) of the ``ok``
    simulations, as ``compute_scores`` makes them from a stored run, without the refusal
    columns.
    """
    if study.scoring.instrument != "lexicon":
        raise ConfigError(f"{study.name}: simulating in memory scores with the lexicon only")
    specs = expand(study, seed_salt=salt)
    kept = [
        (spec, out)
        for spec, out in zip(specs, _transcripts(specs, model), strict=True)
        if out.status(spec.invalid_threshold) == "ok"
    ]
    design = pd.DataFrame(
        [[getattr(spec, c) for c in DESIGN_COLUMNS] for spec, _ in kept], columns=DESIGN_COLUMNS
    )
    rows = [
        (spec.sim_id, agent, channel, spec.language, text)
        for spec, out in kept
        for _, agent, channel, _, text in out.rows
        if agent >= 0
    ]
    messages = count_messages(rows, study.scoring.echo.table(), workers=1)
    hit = list(study.scoring.hit_channels)
    sims = add_indices(design.merge(simulation_measures(messages, hit), on="sim_id"), study.scoring)
    agent_scores = pd.DataFrame()
    if agents:
        assignment = pd.DataFrame(
            [
                (spec.sim_id, i, aligned, individuated)
                for spec, _ in kept
                for i, (aligned, individuated) in enumerate(
                    zip(spec.aligned, spec.individuated, strict=True)
                )
            ],
            columns=["sim_id", "agent", "aligned", "individuated"],
        )
        agent_scores = design.merge(assignment, on="sim_id").merge(
            agent_measures(messages, hit), on=["sim_id", "agent"], how="left"
        )
        agent_scores = add_indices(agent_scores, study.scoring)
    return Scores(sims, agent_scores, [])
