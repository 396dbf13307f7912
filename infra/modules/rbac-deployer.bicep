// Role assignments for the principal running `azd up` (AZURE_PRINCIPAL_ID), so the operator
// tooling works right after provisioning without any key:
//   Azure Service Bus Data Sender  69a216fc-b8fb-44d8-bc22-1f3c2cd27a39  -> scripts/publish_orders.py
//   Storage Table Data Reader      76199698-9eea-4c19-bc75-cec21354c6b6  -> `orders status`,
//                                                                           `orders quarantine list/show`
//   Storage Table Data Contributor 0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3  -> only if grantReplay:
//                                  `orders quarantine replay` marks the record replayed (a write)
// Nothing here is required by the running app; skip it by leaving principalId empty.

@description('Object id of the deploying user / service principal.')
param principalId string

@description('Type of the deploying principal.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

@description('Service Bus namespace name.')
param serviceBusNamespaceName string

@description('Orders queue name.')
param ordersQueueName string

@description('Storage account holding the order store.')
param storageAccountName string

@description('Also grant Storage Table Data Contributor so this principal can run `orders quarantine replay` (it updates the quarantine record). Off by default: read-only operators.')
param grantReplay bool = false

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

// Publish test orders to the orders queue only (not the whole namespace).
resource deployerServiceBusSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(ordersQueue.id, principalId, '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39')
  scope: ordersQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39')
    principalId: principalId
    principalType: principalType
    description: 'Operator: publish test orders (scripts/publish_orders.py).'
  }
}

// Read order state for `orders status` (read only).
resource deployerTableReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, '76199698-9eea-4c19-bc75-cec21354c6b6')
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '76199698-9eea-4c19-bc75-cec21354c6b6')
    principalId: principalId
    principalType: principalType
    description: 'Operator: read order state (orders status).'
  }
}

// Replay writes the quarantine record's status; opt-in so the default operator stays read-only.
resource deployerTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantReplay) {
  name: guid(storage.id, principalId, '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3')
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3')
    principalId: principalId
    principalType: principalType
    description: 'Operator: mark quarantined messages replayed (orders quarantine replay).'
  }
}
