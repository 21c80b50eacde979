"""The running cost and the invoice preview of a tenant, rated by `billing_platform.rating` from the
period's usage. `models` holds the values (a cost line, the cost, a preview and its lines), `service` the
pure assembly and `CostService` (reads the quotas through the entitlement service: no repository of its
own), `schemas` the HTTP answers, `library` the async face `CostReader` and its blocking `.sync`."""
