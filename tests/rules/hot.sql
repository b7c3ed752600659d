-- name: hot
-- actions: lake
-- description: readings above 80 degrees from any device
SELECT device_id() AS device, temperature
FROM 'devices/+/telemetry'
WHERE temperature > 80
