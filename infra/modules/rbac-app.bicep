// Role assignments for the Function App's user-assigned managed identity.
// Least privilege: every assignment is scoped to the narrowest resource that works, uses a
// built-in role (GUIDs below) and a deterministic name guid(scope, principal, role) so that
// re-running `azd provision` is idempotent.
//
// Built-in role definition ids:
//   Azure Service Bus Data Receiver  4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0
//   Azure Service Bus Data Owner     090c5cfd-751d-490a-894a-3ce6f1109419
//   Storage Blob Data Owner          b7e6dc6d-f1e8-4753-8033-0f276bb0955b
//   Storage Table Data Contributor   0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3
//   Monitoring Metrics Publisher     3913510d-42f4-4e42-8a64-420c390055eb
// Not granted: Storage Queue Data Contributor. The Functions host only needs queues on
// AzureWebJobsStorage for blob triggers (poison-blob queue) and Durable Functions; this app has
// neither (Service Bus trigger, timer, HTTP). Timer singleton locks and Flex deployment use blobs.

@description('Principal (object) id of the Function App managed identity.')
param principalId string

@description('Service Bus namespace name.')
param serviceBusNamespaceName string

@description('Orders queue name.')
param ordersQueueName string

@description('Storage account name (host storage + deployment container + order store).')
param storageAccountName string

@description('Application Insights component name.')
param applicationInsightsName string

// With Listen-only rights (Data Receiver) scaling still works but falls back to incremental scaling.
@description('Also grant Azure Service Bus Data Owner on the orders queue only, so the scale controller can read the queue length (Manage right) for target-based scaling. false = strict least privilege.')
param grantServiceBusScaleRights bool = true

resource serviceBusNamespace 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusNamespaceName
}

resource ordersQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' existing = {
  parent: serviceBusNamespace
  name: ordersQueueName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Service Bus trigger: receive + complete/abandon/dead-letter + accept sessions, on the orders
// queue only (its DLQ sub-queue is covered by the same scope).
resource appServiceBusReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(ordersQueue.id, principalId, '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0')
  scope: ordersQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0')
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'Functions Service Bus trigger: receive/settle messages and accept sessions on the orders queue.'
  }
}

// Target-based scaling needs the Manage right to read queue runtime properties (message count).
// The only built-in data role that carries Manage is Data Owner, so it is scoped to the queue,
// never to the namespace.
resource appServiceBusScale 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantServiceBusScaleRights) {
  name: guid(ordersQueue.id, principalId, '090c5cfd-751d-490a-894a-3ce6f1109419')
  scope: ordersQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '090c5cfd-751d-490a-894a-3ce6f1109419')
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'Scale controller: read orders queue length (Manage) for target-based scaling.'
  }
}

// Host storage (AzureWebJobsStorage: blob leases, timer schedule monitor, host keys) and the
// Flex Consumption deployment container. Blob Data Owner is the role the Functions docs recommend
// for the host's basic needs.
resource appStorageBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b')
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b')
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'Functions host storage and Flex Consumption deployment package.'
  }
}

// Order store: read/write order state, idempotency and quarantine entities.
resource appStorageTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3')
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3')
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'Order store: read/write order state and idempotency records in Table Storage.'
  }
}

// Entra-authenticated telemetry ingestion (the component has DisableLocalAuth: true).
resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalId, '3913510d-42f4-4e42-8a64-420c390055eb')
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '3913510d-42f4-4e42-8a64-420c390055eb')
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'Send telemetry to Application Insights with Entra ID auth.'
  }
}
