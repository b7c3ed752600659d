-- name: overheating
-- actions: lake
-- description: Readings above 80 degrees from any device, with its site from config/devices.csv
SELECT device_id() AS device,
       temperature,
       topic(1) AS fleet,
       device_tag('site') AS site,
       ts
FROM 'devices/+/telemetry'
WHERE temperature > 80
