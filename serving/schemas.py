"""Request and response models of the bank-facing API (pydantic; they are the OpenAPI contract)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from kernel.uscc import normalise_uscc, uscc_problem


def _uscc(value: str) -> str:
    code = normalise_uscc(value)
    problem = uscc_problem(code)
    if problem:
        raise ValueError(f"uscc {value!r} is not a valid unified social credit code: {problem}")
    return code


def _purpose(value: str) -> str:
    from serving.config import load_serving_config

    known = load_serving_config().purposes
    if value not in known:
        raise ValueError(f"purpose {value!r} unknown; one of {', '.join(known)}")
    return value


USCC = Annotated[str, Field(min_length=18, max_length=24, description="unified social credit code (GB 32100-2015)",
                            examples=["91330900MA2A0B1C2D"]), AfterValidator(_uscc)]
Purpose = Annotated[str, Field(max_length=32, description="consent purpose: loan_application | post_loan_monitoring",
                               examples=["loan_application"]), AfterValidator(_purpose)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoreRequest(Strict):
    uscc: USCC
    purpose: Purpose


class BatchScoreRequest(Strict):
    usccs: Annotated[list[USCC], Field(min_length=1, max_length=10_000,
                                        description="firms to score (at most serving.yaml batch_max_items)")]
    purpose: Purpose


class ProfileRequest(Strict):
    uscc: USCC
    purpose: Purpose


class Reason(BaseModel):
    code: str
    zh: str
    en: str


class CreditIndex(BaseModel):
    cci: float | None
    tier: str | None
    cap: float | None
    sub_indices: dict[str, float | None]


class OverrideRef(BaseModel):
    override_id: str
    grade: str
    model_grade: str = Field(description="the grade the model (after caps) gave when the override was set")
    reason: str
    analyst: str


class ModelRef(BaseModel):
    name: str
    version: str


class ScoreAnswer(BaseModel):
    uscc: str
    purpose: str
    data_as_of: str
    model: ModelRef
    pd12: float = Field(description="calibrated probability of a serious credit event within 12 months "
                                    "(1.0 for a firm in default)")
    score: int | None = Field(description="credit score 0-1000 (600 at odds 50:1, 50 points to double the odds); "
                                          "none for a firm in default")
    grade: str = Field(description="master-scale grade AAA..C, or D for a firm in default")
    in_default: bool = Field(description="a serious credit event became known within the last 12 months")
    model_pd12: float | None = Field(default=None, description="the model's own PD before the rating caps "
                                     "(none for a firm in default)")
    rating_cap: str | None = Field(default=None, description="the cap (ratings_and_signals §1.3) that bounds "
                                   "this firm's grade, e.g. an active dishonest listing: no better than CC")
    override: OverrideRef | None = Field(default=None, description="an analyst's override of the grade for "
                                         "this model version (§1.3), with the written reason")
    reasons: list[Reason]
    credit_index: CreditIndex
    receipt_id: str


class BatchItem(BaseModel):
    uscc: str
    status: int
    receipt_id: str
    answer: ScoreAnswer | None = None
    error: str | None = None
    detail: str | None = None


class BatchAnswer(BaseModel):
    items: list[BatchItem]


class ProfileAnswer(BaseModel):
    """Envelope + rating; the blocks of configs/profile_blocks.yaml (registration, ownership, credit_index,
    indicators, ...) come as further objects named after the block."""

    model_config = ConfigDict(extra="allow")

    uscc: str
    purpose: str
    data_as_of: str
    model: ModelRef
    rating: dict
    receipt_id: str
