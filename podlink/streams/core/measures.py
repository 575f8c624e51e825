"""How the outcome instruments are scored (`../shared/DOMAIN.md` section 5).

The scores are named for what they are, so a consumer never mistakes a mean for a total.
"""
from __future__ import annotations

# SWEMWBS raw total (7 to 35) to its metric score, as published in several public scoring
# scripts. One source gives 25.99 for raw 29: this is the one place to correct it.
SWEMWBS_METRIC: dict[int, float] = {
    7: 7.00, 8: 9.51, 9: 11.25, 10: 12.40, 11: 13.33, 12: 14.08, 13: 14.75, 14: 15.32,
    15: 15.84, 16: 16.36, 17: 16.88, 18: 17.43, 19: 17.98, 20: 18.59, 21: 19.25, 22: 19.98,
    23: 20.73, 24: 21.54, 25: 22.35, 26: 23.21, 27: 24.11, 28: 25.03, 29: 26.02, 30: 27.03,
    31: 28.13, 32: 29.31, 33: 30.70, 34: 32.55, 35: 35.00,
}


def scores(instrument: str, items: tuple[int, ...]) -> dict[str, int | float]:
    """The instrument's score fields: `totalScore`, or `meanScore` for CMHS (a survey scored
    by its mean), and for SWEMWBS also `metricScore`.

    The contract has already checked the item count and range of every instrument, so a
    SWEMWBS raw total is always in the table.
    """
    if instrument == "CMHS":
        # Two places, as the FHIR Observation's value has.
        return {"meanScore": round(sum(items) / len(items), 2)}
    total = sum(items)
    if instrument == "SWEMWBS":
        return {"totalScore": total, "metricScore": SWEMWBS_METRIC[total]}
    return {"totalScore": total}
