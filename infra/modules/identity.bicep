// User-assigned managed identity used by the Function App for every data-plane call
// (host storage, deployment package, Service Bus trigger, order store, App Insights ingestion).
// A user-assigned identity (rather than system-assigned) lets the role assignments be created
// before the Function App exists, so the app never starts without its permissions.

@description('Name of the user-assigned managed identity.')
param name string

@description('Azure region.')
param location string

@description('Tags applied to the identity.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
