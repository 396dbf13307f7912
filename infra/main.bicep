// Entry point for `azd up` / `az deployment sub create`: creates the resource group and composes
// one-concern modules. No keys or connection strings are created, read or output anywhere:
// every data-plane call uses Entra ID (managed identity for the app, the deploying principal for
// operator tooling).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; used in resource names and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Primary region for all resources (must offer Flex Consumption).')
param location string

@description('Object id of the principal running the deployment (azd sets AZURE_PRINCIPAL_ID). Empty = no operator role assignments.')
param principalId string = ''

@description('Type of principalId: User for interactive azd, ServicePrincipal for CI.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

@description('Optional resource group name override.')
param resourceGroupName string = ''

@description('Service Bus tier.')
@allowed([
  'Standard'
  'Premium'
])
param serviceBusSku string = 'Standard'

@description('Session-enabled orders queue name (ORDERS_QUEUE_NAME).')
param ordersQueueName string = 'orders-with-sessions'

@description('How the orders trigger takes messages (ORDERS_TRIGGER_CARDINALITY): one per invocation, or many (a batch of one session\'s messages, one store transaction per batch: for a few very busy customers). See docs/performance.md.')
@allowed([
  'one'
  'many'
])
param ordersTriggerCardinality string = 'one'

@description('Seconds one invocation holds while the order store is down before the message is given back and Service Bus redelivers it (ORDERS_STORE_RETRY_SECONDS; docs/reliability.md). Budget + one store attempt (110 s) + 30 s must fit host.json functionTimeout and maxAutoLockRenewalDuration (10 min); (maxDeliveryCount - 1) x budget is the outage survivable without a dead letter (9 x 420 s = 63 min).')
@minValue(0)
@maxValue(450)
param ordersStoreRetrySeconds int = 420

@description('Always-ready instances for the orders trigger (0 = scale to zero; 1+ removes cold-start latency at a fixed cost).')
@minValue(0)
@maxValue(20)
param alwaysReadyInstanceCount int = 0

@description('Flex Consumption instance memory (MB).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Flex Consumption maximum instance count.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Grant the app Azure Service Bus Data Owner on the orders queue so target-based scaling can read the queue length.')
param grantServiceBusScaleRights bool = true

@description('Let the deploying principal run `orders quarantine replay` (Storage Table Data Contributor instead of read-only).')
param grantOperatorReplay bool = false

@description('Optional e-mail address for the dead-letter, quarantine and stuck-order alerts.')
param alertEmail string = ''

@description('The stuck-order alert fires when an order\'s parked steps are older than this (minutes); the same ORDERS_STUCK_AFTER_MINUTES the orders CLI reads.')
@minValue(1)
@maxValue(10080)
param ordersStuckAfterMinutes int = 15

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = '${abbrs.webSitesFunctions}${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity './modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}func-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring './modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

module serviceBus './modules/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    namespaceName: '${abbrs.serviceBusNamespaces}${resourceToken}'
    location: location
    tags: tags
    skuName: serviceBusSku
    queueName: ordersQueueName
  }
}

module storage './modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    ordersTableName: 'orders'
  }
}

module appRoles './modules/rbac-app.bicep' = {
  name: 'rbac-app'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    serviceBusNamespaceName: serviceBus.outputs.namespaceName
    ordersQueueName: serviceBus.outputs.queueName
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    grantServiceBusScaleRights: grantServiceBusScaleRights
  }
}

module deployerRoles './modules/rbac-deployer.bicep' = if (!empty(principalId)) {
  name: 'rbac-deployer'
  scope: rg
  params: {
    principalId: principalId
    principalType: principalType
    serviceBusNamespaceName: serviceBus.outputs.namespaceName
    ordersQueueName: serviceBus.outputs.queueName
    storageAccountName: storage.outputs.name
    grantReplay: grantOperatorReplay
  }
}

module functionApp './modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    serviceName: 'api'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    serviceBusNamespaceFqdn: serviceBus.outputs.namespaceFqdn
    ordersQueueName: serviceBus.outputs.queueName
    ordersMaxDeliveryCount: serviceBus.outputs.maxDeliveryCount
    ordersTableName: storage.outputs.ordersTableName
    ordersStoreRetrySeconds: ordersStoreRetrySeconds
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    alwaysReadyInstanceCount: alwaysReadyInstanceCount
    ordersTriggerCardinality: ordersTriggerCardinality
  }
  // The host must not start before its identity can reach storage, Service Bus and App Insights.
  dependsOn: [
    appRoles
  ]
}

module alerts './modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    actionGroupName: '${abbrs.insightsActionGroups}${resourceToken}'
    alertEmail: alertEmail
    deadLetterAlertName: '${abbrs.insightsMetricAlerts}deadletters-${resourceToken}'
    quarantineAlertName: '${abbrs.insightsScheduledQueryRules}quarantined-${resourceToken}'
    stuckAlertName: '${abbrs.insightsScheduledQueryRules}stuck-${resourceToken}'
    stuckAfterMinutes: ordersStuckAfterMinutes
    serviceBusNamespaceId: serviceBus.outputs.namespaceId
    ordersQueueName: serviceBus.outputs.queueName
    applicationInsightsId: monitoring.outputs.applicationInsightsId
  }
}

module workbook './modules/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    serviceBusNamespaceId: serviceBus.outputs.namespaceId
  }
}

// Outputs become azd environment values (`azd env get-values`).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_HOSTNAME string = functionApp.outputs.defaultHostName
output AZURE_USER_ASSIGNED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output SERVICEBUS_NAMESPACE_NAME string = serviceBus.outputs.namespaceName
output SERVICEBUS_NAMESPACE_FQDN string = serviceBus.outputs.namespaceFqdn
output ORDERS_QUEUE_NAME string = serviceBus.outputs.queueName
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output ORDER_STORE_TABLE_SERVICE_URI string = storage.outputs.tableEndpoint
output ORDERS_TABLE_NAME string = storage.outputs.ordersTableName
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output LOG_ANALYTICS_WORKSPACE_NAME string = monitoring.outputs.logAnalyticsName
output ORDERS_WORKBOOK_ID string = workbook.outputs.id
