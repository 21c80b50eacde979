"""Usage-based invoicing: reports metered usage to Stripe Billing meters exactly once per unit.

- service.py: `MeterReporter`, the scheduled report; repository.py: its watermarks in the billing table
  (the only module that reaches DynamoDB); metrics.py: its CloudWatch metrics, named once for the code
  and the dashboard. No models.py: its values (`MeterRunReport`, the watermarks) live beside their one
  user.
"""

from billing_platform.metering.service import MeterReporter, MeterRunReport, meter_identifier

__all__ = ["MeterReporter", "MeterRunReport", "meter_identifier"]
