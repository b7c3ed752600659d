-- -*- mode: sql; sql-product: postgres; -*-
-- Copyright ⓒ 2024-2025 Peter Morgan <peter.james.morgan@gmail.com>
--
-- Licensed under the Apache License, Version 2.0 (the "License");
-- you may not use this file except in compliance with the License.
-- You may obtain a copy of the License at
--
-- http://www.apache.org/licenses/LICENSE-2.0
--
-- Unless required by applicable law or agreed to in writing, software
-- distributed under the License is distributed on an "AS IS" BASIS,
-- WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
-- See the License for the specific language governing permissions and
-- limitations under the License.

-- prepare record_fetch (text, text, integer, integer, integer, integer) as
--
-- SLUICE PATCH: at most 128 records per statement. The engine serves every storage request
-- from one task, and upstream read everything from the fetch offset up to max_bytes (1 MB
-- and more: ~5 000 records, each with its own header query) in one request, after summing
-- sizes over the whole backlog to the high watermark. Producers waited behind that: with the
-- router consuming, a gateway PUBACK's p99 was ~0.4 s at 10 000 msg/s (36 ms with this).
-- The fetch service asks again from the next offset until max_bytes is used, so a consumer
-- gets as much per request as before, in short steps a produce can slot in between.
with bounded as (
select

r.offset_id,
r.attributes,
r.timestamp,
r.k,
r.v,
r.producer_id,
r.producer_epoch

from

cluster c
join topic t on t.cluster = c.id
join topition tp on tp.topic = t.id
join record r on r.topition = tp.id

where

c.name = $1
and t.name = $2
and tp.partition = $3
and r.offset_id >= $4
and r.offset_id < $6

order by r.offset_id
limit 128),

sized as (
select

b.offset_id,
b.attributes,
b.timestamp,
b.k,
b.v,
sum(coalesce(length(b.k), 0) + coalesce(length(b.v), 0)) over (order by b.offset_id) as bytes,
b.producer_id,
b.producer_epoch

from bounded b)

select * from sized where bytes < $5;
