"""Filters every scoped query repeats; constant text, the values are bound."""

from __future__ import annotations

MODEL_FILTER = "({model:String} = '' OR model = {model:String})"
VERSION_FILTER = "({version:Int64} < 0 OR version = {version:Int64})"
MINUTES_FILTER = "minute >= {since:DateTime64(3, 'UTC')} AND minute < {until:DateTime64(3, 'UTC')}"
TS_FILTER = "ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}"
BUCKET_SQL = "toStartOfInterval({col}, toIntervalSecond({{step:UInt32}}))"
