"""The one error tree of alignbf.

::

    AlignbfError                 user-facing failure: one line, exit code 1
    ├── ConfigError              a study, endpoint, prompt, lexicon or prereg file is wrong
    ├── EndpointError            an endpoint refused, failed or is misconfigured
    │   ├── TransientEndpointError   retries exhausted on transient faults (resumable)
    │   ├── ContextLengthError   the prompt no longer fits the model (a simulation outcome)
    │   └── BudgetExceeded       the study budget stops new calls (run stays resumable)
    ├── StoreError               a run directory or its database is unusable
    └── AnalysisError            scores or statistics cannot be computed

Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class AlignbfError(Exception):
    """Base class: an error a user can act on, shown as one line."""

    exit_code = 1


class ConfigError(AlignbfError):
    """A configuration or data file is missing, malformed or inconsistent."""


class EndpointError(AlignbfError):
    """An endpoint could not be used (auth, quota, unknown model, unreachable, retries spent)."""


class TransientEndpointError(EndpointError):
    """Retries on transient faults (429, 5xx, timeouts) are exhausted; a resume may succeed."""


class ContextLengthError(EndpointError):
    """The conversation outgrew the model's context window."""


class BudgetExceeded(EndpointError):
    """The study budget (calls, tokens or USD) is spent."""


class StoreError(AlignbfError):
    """A run directory or its SQLite store cannot be read or written."""


class AnalysisError(AlignbfError):
    """Scores or statistics cannot be computed from the data given."""
