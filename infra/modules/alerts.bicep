// Alerts for the orders pipeline:
//  1. metric alert: any message in the orders queue's dead-letter queue (DeadletteredMessages > 0,
//     filtered on the EntityName dimension),
//  2. log alert (scheduled query rule) on Application Insights traces: any message the app
//     quarantined (outcome == "quarantined") in the evaluation window,
//  3. log alert on the same traces: an order whose parked steps have waited longer than stuckAfterMinutes
//     (the step before them is missing: never sent, quarantined or dead-lettered). The query is the
//     workbook's stuck-orders panel, generated into ../workbook/stuck-orders.kql by scripts/build_workbook.py,
//  4. an action group they all notify (e-mail receiver optional).
// What each alert means and what to do: docs/operations.md.

@description('Azure region for the scheduled query rule (metric alerts and action groups are global).')
param location string

@description('Tags applied to the alert resources.')
param tags object = {}

@description('Action group name.')
param actionGroupName string

@description('Short name shown in notifications (max 12 characters).')
@maxLength(12)
param actionGroupShortName string = 'orders'

@description('Optional e-mail address notified by the alerts; empty = action group without receivers.')
param alertEmail string = ''

@description('Metric alert name (dead letters).')
param deadLetterAlertName string

@description('Scheduled query rule name (quarantines).')
param quarantineAlertName string

@description('Scheduled query rule name (stuck orders).')
param stuckAlertName string

@description('Parked steps older than this many minutes make an order stuck (ORDERS_STUCK_AFTER_MINUTES of the orders CLI).')
@minValue(1)
@maxValue(10080)
param stuckAfterMinutes int = 15

@description('Resource id of the Service Bus namespace.')
param serviceBusNamespaceId string

@description('Orders queue name (EntityName dimension value).')
param ordersQueueName string

@description('Resource id of the Application Insights component.')
param applicationInsightsId string

var emailReceivers = empty(alertEmail) ? [] : [
  {
    name: 'orders-oncall'
    emailAddress: alertEmail
    useCommonAlertSchema: true
  }
]

// The app writes one JSON log line per message: {"outcome": "applied|duplicate|parked|quarantined",
// "reason": ..., "lag_ms": ...}. Depending on the logging path the fields arrive either as
// customDimensions keys or only inside the message text, so both are read.
var quarantineQuery = '''
traces
| where message has "quarantined" or tostring(customDimensions.outcome) == "quarantined"
| extend payload = parse_json(message)
| extend outcome = coalesce(tostring(customDimensions.outcome), tostring(payload.outcome))
| extend reason = coalesce(tostring(customDimensions.reason), tostring(payload.reason))
| where outcome == "quarantined"
| summarize quarantined = count() by reason
'''

// One query with the workbook's panel: every per-message line carries parked_steps (steps its order holds
// parked after it); an order is stuck when its latest line still has some and they have waited too long.
var stuckQuery = replace(loadTextContent('../workbook/stuck-orders.kql'), '__STUCK_AFTER_MINUTES__', string(stuckAfterMinutes))

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: actionGroupShortName
    enabled: true
    emailReceivers: emailReceivers
  }
}

resource deadLetterAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: deadLetterAlertName
  location: 'global'
  tags: tags
  properties: {
    description: 'Messages are sitting in the dead-letter queue of the orders queue. See docs/operations.md#dead-letters.'
    severity: 1
    enabled: true
    scopes: [
      serviceBusNamespaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'DeadletteredMessages'
          metricNamespace: 'Microsoft.ServiceBus/namespaces'
          metricName: 'DeadletteredMessages'
          dimensions: [
            {
              name: 'EntityName'
              operator: 'Include'
              values: [
                ordersQueueName
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Maximum'
        }
      ]
    }
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}

resource quarantineAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: quarantineAlertName
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Orders quarantined'
    description: 'The app quarantined at least one order message. See docs/operations.md#quarantine.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: quarantineQuery
          timeAggregation: 'Total'
          metricMeasureColumn: 'quarantined'
          dimensions: [
            {
              name: 'reason'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource stuckAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: stuckAlertName
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Orders stuck'
    description: 'An order has waited longer than ${stuckAfterMinutes} minutes for a missing step (its later steps are parked). See docs/operations.md#why-is-order-x-stuck.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    // a gap opens with a `parked` line that may be hours old: the query looks back two days
    overrideQueryTimeRange: 'P2D'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: stuckQuery
          timeAggregation: 'Total'
          metricMeasureColumn: 'stuck_orders'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

output actionGroupId string = actionGroup.id
