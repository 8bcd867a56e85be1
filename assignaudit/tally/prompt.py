"""`count --prompts`: prompt agreement of point-prompted queries per class x band (assignaudit/assign/prompt.py).

For every GT reaching the matcher: ``num_gt`` and ``num_agree`` (a plain Hungarian match pairs it with its own
prompt's query), in the GT's band and in ``all``; ``prompts.parquet`` holds them with ``agreement_rate``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from assignaudit import schema
from assignaudit.assign.prompt import (SOURCE_DUMP, SOURCE_PROXY, PromptOptions, agreement_from_matched_query,
                                       prompt_points, proxy_match)
from assignaudit.bands import ALL_BANDS, Bands
from assignaudit.errors import DataError

PROMPTS_SCHEMA = pa.schema([("class", pa.string()), ("band", pa.string()), ("num_gt", pa.int64()),
                            ("num_agree", pa.int64()), ("agreement_rate", pa.float64())])
if tuple(PROMPTS_SCHEMA.names) != schema.PROMPTS_COLUMNS:
    raise ImportError("tally.prompt.PROMPTS_SCHEMA is out of step with schema.PROMPTS_COLUMNS")


class PromptTally:
    def __init__(self, config, bands: Bands, options: PromptOptions, dump=None) -> None:
        self.config, self.bands, self.options, self.dump = config, bands, options, dump
        self.class_names = tuple(config.class_names)
        shape = (len(self.class_names), len(bands) + 1)
        self.num = np.zeros(shape, np.int64)
        self.agree = np.zeros(shape, np.int64)
        self.token_index = {t: i for i, t in enumerate(dump.sample_tokens)} if dump is not None else {}
        self.points_of = lambda: None  # query.cost bonet: the frame's points (set by count.FrameCounter)

    def add(self, boxes: np.ndarray, class_name: np.ndarray, gtb, token: str) -> np.ndarray:
        k = len(boxes)
        if self.dump is None:
            agree = proxy_match(prompt_points(boxes, self.options, token), boxes) == np.arange(k)
        else:
            from assignaudit.assign.hungarian import QueryFrame, replay_frame
            from assignaudit.sources.base import Frame

            i = self.token_index[token]
            q = self.dump.boxes.shape[2]
            if k > q:
                raise DataError(f"query dump {self.dump.path}: frame {token!r} has {k} GT but {q} queries; point "
                                "prompts need one query per GT")
            qf = QueryFrame(token, self.dump.boxes[i][:, :k], self.dump.logits[i][:, :k], self.dump.yaw_encoding)
            none = np.full(k, None, dtype=object)
            fr = Frame(token, boxes, class_name, class_name, none, none, np.full(k, -1, np.int64),
                       np.full(k, -1, np.int64))
            rep = replay_frame(qf, fr, self.class_names, self.config.query.cost,
                               point_cloud_range=self.config.point_cloud_range, points=self.points_of())
            agree = agreement_from_matched_query(rep.matched_query[-1])
        gtb.add(self.num)
        gtb.add(self.agree, agree.astype(np.float64))
        return agree

    def frame(self) -> pd.DataFrame:
        band_names = np.array(self.bands.names + [ALL_BANDS], dtype=object)
        nc, nb = self.num.shape
        n, a = self.num.reshape(-1), self.agree.reshape(-1)
        return pd.DataFrame({
            "class": np.repeat(np.array(self.class_names, dtype=object), nb), "band": np.tile(band_names, nc),
            "num_gt": n, "num_agree": a,
            "agreement_rate": np.divide(a, n, out=np.full(n.shape, np.nan), where=n > 0),
        }, columns=list(schema.PROMPTS_COLUMNS))

    def metadata(self) -> dict[str, Any]:
        o = self.options
        return {"prompts": {"mode": o.mode, "jitter": o.jitter, "seed": o.seed,
                            "source": SOURCE_DUMP if self.dump is not None else SOURCE_PROXY}}
