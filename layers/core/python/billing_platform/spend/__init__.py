"""Spend caps in money: `models` (caps, a period's spend, the pure step and refusal decisions),
`repository` (the cap and spend items), `schemas` (the cap routes' bodies and answers). No service module:
setting a cap and the capped consume are use cases of the quota take (`entitlements.capped`), which this
package must not import back."""
