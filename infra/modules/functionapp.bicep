// Flex Consumption (FC1, Linux) plan + Python 3.13 Function App.
//
// Keyless by construction:
//  * the deployment package container is reached with the user-assigned identity,
//  * every connection in app settings is identity based (<CONNECTION>__credential = managedidentity
//    + <CONNECTION>__clientId); no storage account key or SAS token is read or stored,
//  * App Insights ingestion uses Entra ID (APPLICATIONINSIGHTS_AUTHENTICATION_STRING),
//  * FTP and SCM basic-auth publishing credentials are disabled (azd deploys with an Entra token).
//
// Flex Consumption note: FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION and
// WEBSITE_RUN_FROM_PACKAGE must NOT be app settings on FC1; the runtime comes from
// functionAppConfig.runtime and the package from functionAppConfig.deployment.

@description('Function App name.')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Azure region (must support Flex Consumption).')
param location string

@description('Tags applied to the plan and the app (the app also gets azd-service-name).')
param tags object = {}

@description('azd service name from azure.yaml; azd finds the app to deploy to by this tag.')
param serviceName string = 'api'

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity (selects it in <CONNECTION>__clientId).')
param identityClientId string

@description('Storage account name used as AzureWebJobsStorage (identity based).')
param storageAccountName string

@description('Blob endpoint of the storage account, e.g. https://st.blob.core.windows.net/.')
param storageBlobEndpoint string

@description('Table endpoint of the storage account used by the order store.')
param storageTableEndpoint string

@description('Container holding the deployment package.')
param deploymentContainerName string

@description('Fully qualified Service Bus namespace, e.g. sb-xyz.servicebus.windows.net.')
param serviceBusNamespaceFqdn string

@description('Session-enabled orders queue name (ORDERS_QUEUE_NAME).')
param ordersQueueName string

@description('Queue maxDeliveryCount; ORDERS_MAX_DELIVERY_COUNT must equal it, so it is wired from the queue.')
param ordersMaxDeliveryCount int

@description('Order store table name (ORDERS_TABLE_NAME).')
param ordersTableName string

@description('ORDERS_STORE_RETRY_SECONDS: how long one invocation holds while the store is down before the message is redelivered. Budget + one store attempt (110 s) + 30 s must fit host.json functionTimeout and maxAutoLockRenewalDuration (10 min); the app refuses more than 450.')
@minValue(0)
@maxValue(450)
param ordersStoreRetrySeconds int = 420

@description('Application Insights connection string (not a secret once local auth is disabled).')
param applicationInsightsConnectionString string

@description('Instance memory size in MB (Flex Consumption supports 512, 2048 and 4096).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Upper bound on scale-out. Each instance handles up to maxConcurrentSessions (host.json) sessions.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Always-ready instances for the Service Bus trigger function (0 = scale to zero; >0 removes cold starts at a fixed cost).')
@minValue(0)
@maxValue(20)
param alwaysReadyInstanceCount int = 0

@description('ORDERS_TRIGGER_CARDINALITY: one = one message per invocation; many = a batch of one session\'s messages (host.json maxMessageBatchSize) per invocation, one store transaction per batch. See docs/performance.md.')
@allowed([
  'one'
  'many'
])
param ordersTriggerCardinality string = 'one'

@description('Name of the Service Bus-triggered function in function_app.py (always-ready group "function:<name>").')
param ordersFunctionName string = 'process_order_step'

var alwaysReady = alwaysReadyInstanceCount > 0 ? [
  {
    name: 'function:${ordersFunctionName}'
    instanceCount: alwaysReadyInstanceCount
  }
] : []

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        alwaysReady: alwaysReady
      }
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
  }
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: {
    // Host storage (leases, timers, keys) - identity based.
    AzureWebJobsStorage__accountName: storageAccountName
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    // Service Bus trigger: connection="ServiceBusConnection".
    ServiceBusConnection__fullyQualifiedNamespace: serviceBusNamespaceFqdn
    ServiceBusConnection__credential: 'managedidentity'
    ServiceBusConnection__clientId: identityClientId
    // Order store (Azure Table Storage) - read by shared/ via OrderStoreConnection__*.
    OrderStoreConnection__tableServiceUri: storageTableEndpoint
    OrderStoreConnection__credential: 'managedidentity'
    OrderStoreConnection__clientId: identityClientId
    // Application settings (see local.settings.json.example for the local equivalents).
    ORDERS_QUEUE_NAME: ordersQueueName
    ORDERS_TABLE_NAME: ordersTableName
    IDEMPOTENCY_RETENTION_DAYS: '14'
    ORDERS_PARK_LIMIT: '50'
    ORDERS_MAX_DELIVERY_COUNT: string(ordersMaxDeliveryCount)
    ORDERS_TRIGGER_CARDINALITY: ordersTriggerCardinality
    ORDERS_STORE_RETRY_SECONDS: string(ordersStoreRetrySeconds)
    // One worker thread per concurrent session (host.json maxConcurrentSessions): an invocation holding
    // through a store outage keeps its thread, and one queued behind it would overrun functionTimeout
    // (the host counts from dispatch). The Python worker's default is min(32, CPUs + 4).
    PYTHON_THREADPOOL_THREAD_COUNT: '16'
    // Telemetry with Entra ID authentication (the component has DisableLocalAuth: true).
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  }
}

// No basic-auth publishing credentials: deployments authenticate with Entra ID.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output id string = functionApp.id
output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
