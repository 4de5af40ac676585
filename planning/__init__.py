"""Planning: make-to-order from sales orders, time-phased MRP with pegging, ATP/CTP (to come: its rules,
services and routers sit above mes and inventory in the layers)."""
