"""A real mixed-type table that ships offline: Fair's (1978) survey on marriage and affairs,
from statsmodels, with its codes given back their labels."""

from __future__ import annotations

from typing import Any

from ptheta.data.spec import Dataset
from ptheta.data.table import ColumnSpec, table_dataset

# The built-in's rows are shuffled with this seed and split 80 / 10 / 10, once for all.
AFFAIRS_SEED = 1_978

OCCUPATIONS = (
    "student",
    "farming, semi-skilled or unskilled",
    "white-collar",
    "teacher, nurse, artist, technician or skilled",
    "managerial or business",
    "professional with advanced degree",
)
# statsmodels' codes -> labels (its documentation of the data set); the bands of age,
# years married and children stay the numbers the source gives.
LABELS: dict[str, dict[float, str]] = {
    "rate_marriage": {1: "very poor", 2: "poor", 3: "fair", 4: "good", 5: "very good"},
    "age": {17.5: "17.5", 22: "22", 27: "27", 32: "32", 37: "37", 42: "42"},
    "yrs_married": {0.5: "0.5", 2.5: "2.5", 6: "6", 9: "9", 13: "13", 16.5: "16.5", 23: "23"},
    "children": {0: "0", 1: "1", 2: "2", 3: "3", 4: "4", 5.5: "5.5"},
    "religious": {1: "not", 2: "mildly", 3: "fairly", 4: "strongly"},
    "educ": {
        9: "grade school",
        12: "high school",
        14: "some college",
        16: "college graduate",
        17: "some graduate school",
        20: "advanced degree",
    },
    "occupation": dict(enumerate(OCCUPATIONS, start=1)),
    "occupation_husb": dict(enumerate(OCCUPATIONS, start=1)),
}
ORDINAL = ("rate_marriage", "age", "yrs_married", "children", "religious", "educ")

COLUMNS: tuple[ColumnSpec, ...] = (
    *(ColumnSpec(name, "ordinal", tuple(LABELS[name].values())) for name in ORDINAL),
    ColumnSpec("occupation", "categorical", OCCUPATIONS),
    ColumnSpec("occupation_husb", "categorical", OCCUPATIONS),
    ColumnSpec("any_affairs", "binary", ("no", "yes")),
    ColumnSpec("affairs", "continuous", lower=0.0),
)


def affairs_frame() -> Any:
    """Fair's 6,366 survey answers as labelled columns: statsmodels' ``fair`` data with
    each code replaced by its label, and ``affairs`` (time spent in affairs, with 68 % of
    exact zeros) split into ``any_affairs`` (no / yes) and ``affairs`` (the positive
    time, a missing cell where there was none), so that no density has to put a point
    mass at 0."""
    import pandas as pd
    from statsmodels.datasets import fair

    raw = fair.load_pandas().data
    frame = pd.DataFrame({name: raw[name].map(LABELS[name]) for name in LABELS})
    frame["any_affairs"] = (raw["affairs"] > 0).map({False: "no", True: "yes"})
    frame["affairs"] = raw["affairs"].where(raw["affairs"] > 0)
    return frame


def affairs_dataset() -> Dataset:
    """The built-in ``affairs``: a real table of 10 columns (6 ordinal, 2 categorical, 1
    binary, 1 continuous >= 0, missing where there were no affairs).

    Example:
        >>> data = affairs_dataset()
        >>> data.spec.describe(), len(data.train)
        ('table of 10 columns (6 ordinal, 2 categorical, 1 binary, 1 continuous)', 5094)
    """
    return table_dataset(
        affairs_frame(),
        name="affairs",
        schema=COLUMNS,
        seed=AFFAIRS_SEED,
        description=DESCRIPTION,
        extra={"source": "statsmodels.datasets.fair (Fair 1978)"},
    )


DESCRIPTION = (
    "Fair (1978) survey, 6,366 women: marriage rating, age, years married, children, "
    "religiousness, education (ordinal), occupations (categorical), any affairs (binary), "
    "time in affairs (continuous >= 0, missing when none); a real mixed table"
)
