"""Data: converters from public outcome datasets to the outcome log, a synthetic demo log, the data folder.

Every converter returns validated outcome logs (see :mod:`v0lite.log`) with the columns
``policy, prompt, score`` and, where the source has them, ``step, n, cost, prompt_id,
task``. Nothing is silently dropped: unusable rows raise :class:`~v0lite.exceptions.DataError`
naming the file, row and value; the only cells skipped on purpose (blank RouterBench
outcomes) are counted in a :class:`~v0lite.exceptions.V0liteWarning`.

==================  =====================================================================
format              source (see each folder's PROVENANCE.md under :func:`data_dir`)
==================  =====================================================================
``v0``              V0 paper sample: jsonl rows ``{id, score in [-1, 1], model, step,
                    dataset}`` + ``prompt_dict.json``; 10 rollouts per row
``routerbench``     RouterDC's RouterBench CSVs ``<task>_train.csv`` / ``<task>_test.csv``;
                    11 models, binary outcome and USD cost per call
``routerdc``        RouterDC 7-model JSON files ``[{question, scores{model: float}}]``;
                    ``split="official"``: train / test_id / test_ood as in RouterDC
``oneshot-rlvr``    One-Shot-RLVR ``dsr_sub_acc_history.jsonl``: one evolving GRPO policy,
                    8 rollouts per visit
==================  =====================================================================

:func:`map_columns` turns your own table (a spreadsheet export: any column names, true/false or 0-100
outcomes) into an outcome log.

:func:`make_demo_log` / :func:`write_demo_data` build a clearly labelled SYNTHETIC log for
examples and smoke tests.

:func:`split_by_prompt` splits a log by prompt, :func:`prompt_folds` assigns prompts to CV folds; :func:`data_dir`
finds the public datasets.
"""

from .._folds import prompt_folds
from ._convert import CONVERTERS, convert
from ._demo import make_demo_log, write_demo_data
from ._map import map_columns
from ._oneshot import ONESHOT_POLICY, convert_oneshot_rlvr
from ._paths import data_dir
from ._routerbench import convert_routerbench
from ._routerdc import ROUTERDC_OOD, ROUTERDC_SPLITS, convert_routerdc
from ._split import split_by_prompt
from ._v0 import convert_v0

__all__ = [
    "data_dir",
    "convert_v0",
    "convert_routerbench",
    "convert_routerdc",
    "convert_oneshot_rlvr",
    "split_by_prompt",
    "prompt_folds",
    "make_demo_log",
    "write_demo_data",
    "CONVERTERS",
    "convert",
    "map_columns",
    "ONESHOT_POLICY",
    "ROUTERDC_OOD",
    "ROUTERDC_SPLITS",
]
