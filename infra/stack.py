"""The billing platform in one stack, composed of one construct per concern."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from billing_platform import resources
from billing_platform.resources import DependencyLayer
from infra.constructs.api import Api
from infra.constructs.data import Data
from infra.constructs.events import BillingEvents
from infra.constructs.functions import Functions
from infra.constructs.layers import Layers
from infra.constructs.monitoring import Monitoring
from infra.constructs.usage_pipeline import UsagePipeline
from infra.constructs.waf import ApiFirewall
from infra.constructs.webhooks import StripeSecrets
from infra.dependency_layers import LAMBDA_PYTHON_VERSION

ROOT = Path(__file__).resolve().parent.parent
RUNTIMES = {"3.13": lambda_.Runtime.PYTHON_3_13, "3.14": lambda_.Runtime.PYTHON_3_14}
LAMBDA_RUNTIME = RUNTIMES[LAMBDA_PYTHON_VERSION]


class BillingStack(Stack):
    """Tables, queue, secrets, layers, functions, API (behind a WAF web ACL unless waf=False), event sources
    and alarms, all from billing_platform.resources. `dependency_layer_dirs` are the built layer folders
    (infra.dependency_layers); tests pass empty ones."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dependency_layer_dirs: Mapping[DependencyLayer, Path],
        environment_name: str = "production",
        retain_data: bool = True,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        require_api_keys: bool = True,
        waf: bool = True,
        xray_sdk: bool = False,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        # Data outlives the stack unless asked otherwise (a dev stack can pass retain_data=False).
        data_policy = RemovalPolicy.RETAIN if retain_data else RemovalPolicy.DESTROY

        self.data = Data(self, "Data", removal_policy=data_policy)
        self.stripe = StripeSecrets(self, "Webhooks", removal_policy=data_policy)
        self.events = BillingEvents(
            self, "Events", spec=resources.EVENT_BUS, data=self.data, removal_policy=data_policy
        )
        self.layers = Layers(
            self,
            "Layers",
            runtime=LAMBDA_RUNTIME,
            core_library_dir=ROOT / "layers" / "core",
            dependency_dirs=dependency_layer_dirs,
        )
        self.functions = Functions(
            self,
            "Functions",
            specs=resources.FUNCTIONS,
            functions_dir=ROOT / "functions",
            runtime=LAMBDA_RUNTIME,
            data=self.data,
            layers=self.layers,
            stripe=self.stripe,
            events=self.events,
            environment_name=environment_name,
            xray_sdk=xray_sdk,
            log_retention=log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.api = Api(
            self,
            "Api",
            functions=self.functions,
            log_retention=log_retention,
            removal_policy=RemovalPolicy.DESTROY,
            require_api_keys=require_api_keys,
            waf=waf,
        )
        self.firewall = (
            ApiFirewall(
                self,
                "Firewall",
                stage=self.api.rest_api.deployment_stage,
                log_retention=log_retention,
                removal_policy=RemovalPolicy.DESTROY,
            )
            if waf
            else None
        )
        # Freshness reads the aggregator's IteratorAge metric, whose dimension is its deployed name.
        self.functions[resources.OPERATIONS].add_environment(
            resources.AGGREGATOR_FUNCTION_NAME_ENV, self.functions[resources.USAGE_AGGREGATOR].function_name
        )
        # The api_keys function puts each tenant's usage-plan key into the plan the API just made.
        self.functions.connect_usage_plan(self.api.usage_plan)
        self.usage_pipeline = UsagePipeline(
            self, "UsagePipeline", specs=resources.FUNCTIONS, data=self.data, functions=self.functions
        )
        self.monitoring = Monitoring(self, "Monitoring", removal_policy=RemovalPolicy.DESTROY)
        self._monitor()
        self._outputs()

    def _monitor(self) -> None:
        for name, function in self.functions.functions.items():
            self.monitoring.watch_function(name, function)
        for queue_spec in resources.QUEUES:
            dlq = self.data.dead_letter_queue(queue_spec)
            self.monitoring.watch_dead_letter_queue(f"{queue_spec.logical_id}Dlq", dlq)
        for name, queue in self.usage_pipeline.stream_failures.items():
            self.monitoring.watch_dead_letter_queue(f"{name.title().replace('_', '')}StreamFailures", queue)
        for spec in resources.FUNCTIONS:
            if spec.stream_source:
                self.monitoring.watch_stream_consumer(spec.name, self.functions[spec])
        self.monitoring.watch_api("Api", self.api.rest_api)
        for queue_spec in resources.QUEUES:
            self.monitoring.watch_queue(queue_spec.logical_id, self.data.queue(queue_spec))
        self.monitoring.watch_meter_reporter()
        self.monitoring.add_dashboard()

    def _outputs(self) -> None:
        CfnOutput(self, "ApiUrl", value=self.api.url, description="Base URL of the billing API stage")
        for spec in resources.TABLES:
            CfnOutput(self, f"{spec.logical_id}Name", value=self.data.table(spec).table_name)
        CfnOutput(
            self,
            "TenantUsagePlanId",
            value=self.api.usage_plan.usage_plan_id,
            description="Per-tenant throttling plan (python -m infra.usage_plan_backfill --usage-plan-id <id>)",
        )
        CfnOutput(self, "UsageQueueUrl", value=self.data.queue(resources.USAGE_QUEUE).queue_url)
        CfnOutput(self, "UsageDlqUrl", value=self.data.dead_letter_queue(resources.USAGE_QUEUE).queue_url)
        CfnOutput(self, "WebhookDlqUrl", value=self.data.dead_letter_queue(resources.WEBHOOK_QUEUE).queue_url)
        CfnOutput(
            self,
            "UsageAggregatorFunctionName",
            value=self.functions[resources.USAGE_AGGREGATOR].function_name,
            description="The dimension of its IteratorAge metric (billing-admin freshness)",
        )
        CfnOutput(
            self,
            "EventBusName",
            value=self.events.bus.event_bus_name,
            description="Billing events (billing.quota.threshold_crossed, billing.grant.*): add your own rules",
        )
        CfnOutput(self, "EventBusArn", value=self.events.bus.event_bus_arn)
        CfnOutput(
            self,
            "StripeApiKeySecretArn",
            value=self.stripe.api_key.secret_arn,
            description="Set its value: aws secretsmanager put-secret-value --secret-id <arn> --secret-string sk_...",
        )
        CfnOutput(
            self,
            "StripeWebhookSecretArn",
            value=self.stripe.webhook_secret.secret_arn,
            description="Set its value to the webhook endpoint's signing secret (whsec_...)",
        )
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn, description="Subscribe to alarms")
