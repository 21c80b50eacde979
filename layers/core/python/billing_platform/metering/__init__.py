"""Usage-based invoicing: reports metered usage to Stripe Billing meters exactly once per unit."""

from billing_platform.metering.reporter import MeterReporter, MeterRunReport, meter_identifier

__all__ = ["MeterReporter", "MeterRunReport", "meter_identifier"]
