"""Spend caps in money: `models` (caps, a period's spend, the pure step and refusal decisions),
`repository` (the cap and spend items), `service` (`SpendCaps`: setting caps and the capped consume, one
transaction with the quota take), `schemas` (the cap routes' bodies and answers)."""
