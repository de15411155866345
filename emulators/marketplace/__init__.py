"""Azure Marketplace emulator: SaaS fulfilment API v2 and the metering service, on one HTTPS port.

- Fulfilment under `/api/saas` (api-version 2018-08-31): resolve, get/list subscriptions (pages with
  `@nextLink`), listAvailablePlans, activate, PATCH plan/quantity, DELETE, operations list/get/patch.
- Metering under `/api`: `usageEvent`, `batchUsageEvent` (at most 25), `usageEvents` (daily aggregates).
- Every call needs a bearer token from the emulated Entra ID for resource 20e940b3-4c77-4b0b-9a53-9e16a1b010a7
  (scope `20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default`) of the publisher fulfilment app in the publisher
  tenant: 401 when missing/expired/badly signed, 403 for another app or tenant. x-ms-requestid and
  x-ms-correlationid are echoed, or generated.
- Single-event metering errors answer 400 BadArgument whose `details[0].code` is the batch status
  (Expired, InvalidQuantity, InvalidDimension, ResourceNotFound, ResourceNotActive, BadArgument).

Control API under `/_emulator` (no authentication; loopback only):
`POST purchases`, `POST subscriptions/{id}/landing-token`, `POST subscriptions/{id}/change-plan|change-quantity|
suspend|reinstate|unsubscribe|renew`, `GET|PUT webhook`, `GET|PUT landing-page`, `GET webhook-deliveries`,
`POST webhook-deliveries/redeliver` `{"delivery_ids"}` (send again, in that order, fresh token),
`PUT webhook-hold` `{"size"}` / `DELETE webhook-hold` (hold the next webhooks, send them newest first),
`POST operations/{id}/webhook-answer` `{"status_code"}` (the answer to a webhook a load generator sent in
Marketplace's place: a 4xx other than 429 within the operation's time rejects it, as for the sender's own),
`GET state`, `GET|PUT clock`, `POST clock/advance`, `POST managed-applications`,
`POST usage-events/{id}/drop`, `PATCH usage-events/{id}`, and fault rules under `faults`.

Suite options (`EmulatorSuiteConfig.options`): `marketplace_operation_timeout_seconds` (10),
`marketplace_publisher_operation_seconds` (2), `marketplace_webhook_max_attempts` (6),
`marketplace_webhook_initial_backoff_seconds` (0.5, doubling), `marketplace_page_size` (100),
`marketplace_landing_page_url`, `marketplace_faults` (initial fault rules); the webhook URL comes from
`EmulatorSuiteConfig.publisher_webhook_url`.
"""

from emulators.marketplace.emulator import MarketplaceEmulator

__all__ = ["MarketplaceEmulator"]
