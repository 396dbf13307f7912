// Service Bus namespace + the session-enabled orders queue.
//
// Every queue property the app relies on is a literal here (not a parameter) so that the
// offline tests in tests/infra/ can compare it with host.json and local.settings.json.example.
// Why each value is what it is:
//
//  requiresSession: true
//      Orders of one customer share a SessionId; the session lock guarantees one consumer and
//      FIFO order per customer. This flag cannot be changed after the queue is created
//      (changing it means a new queue + migration), so it is never parameterised.
//  lockDuration: 'PT1M'
//      The session/peek lock. host.json renews it (maxAutoLockRenewalDuration 00:10:00, equal to
//      functionTimeout 00:10:00), so an invocation holding through a store outage (up to
//      ORDERS_STORE_RETRY_SECONDS, 7 min) keeps its lock; a crashed instance only holds the session
//      for <= 1 minute before another instance can take it over. Max allowed is 5 min.
//  maxDeliveryCount: 10
//      Must equal ORDERS_MAX_DELIVERY_COUNT (local.settings.json.example, app setting wired from
//      the output below): the app quarantines a message on its last delivery attempt instead of
//      letting Service Bus dead-letter it silently. It is also the store-outage budget: each delivery
//      holds ORDERS_STORE_RETRY_SECONDS (420 s) while the store is down, so (10 - 1) x 420 s = 63 min
//      of outage dead-letters nothing (docs/reliability.md; tests/infra checks it stays >= 2 x 30 min).
//  deadLetteringOnMessageExpiration: true
//      An order that outlives its TTL is moved to the DLQ (and raises the dead-letter alert)
//      instead of being dropped.
//  requiresDuplicateDetection: true + duplicateDetectionHistoryTimeWindow: 'PT10M'
//      Publisher retries that reuse the same MessageId within 10 minutes are dropped by the broker.
//      Older duplicates are caught by the app's idempotency records (IDEMPOTENCY_RETENTION_DAYS).
//      Can only be enabled at creation time too.
//  defaultMessageTimeToLive: 'P14D'
//      Equal to IDEMPOTENCY_RETENTION_DAYS (14): any message still deliverable is younger than the
//      idempotency records that deduplicate it.
//  Session idle timeout (5 s), maxConcurrentSessions (16) and autoCompleteMessages (true) are
//  client-side settings in host.json; they have no queue counterpart.

@description('Service Bus namespace name.')
param namespaceName string

@description('Azure region.')
param location string

@description('Tags applied to the namespace.')
param tags object = {}

@description('Namespace tier. Standard is enough for sessions; Premium adds isolation, VNet and larger messages.')
@allowed([
  'Standard'
  'Premium'
])
param skuName string = 'Standard'

@description('Messaging units when skuName is Premium (ignored for Standard).')
@allowed([
  1
  2
  4
  8
  16
])
param premiumMessagingUnits int = 1

@description('Name of the session-enabled orders queue (must match ORDERS_QUEUE_NAME).')
param queueName string = 'orders-with-sessions'

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuName
    capacity: skuName == 'Premium' ? premiumMessagingUnits : 1
  }
  properties: {
    // Entra ID only: SAS keys / connection strings cannot be used against this namespace.
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

// Declared with `parent:` (not nested) so the offline parsers see it as its own resource.
resource ordersQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: queueName
  properties: {
    requiresSession: true
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    deadLetteringOnMessageExpiration: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    defaultMessageTimeToLive: 'P14D'
    enableBatchedOperations: true
    enablePartitioning: false
    maxSizeInMegabytes: 5120
  }
}

output namespaceId string = namespace.id
output namespaceName string = namespace.name
// e.g. "sb-xyz.servicebus.windows.net" (derived from the endpoint so sovereign clouds work too).
output namespaceFqdn string = replace(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':443/', '')
output queueId string = ordersQueue.id
output queueName string = ordersQueue.name
output maxDeliveryCount int = ordersQueue.properties.maxDeliveryCount
