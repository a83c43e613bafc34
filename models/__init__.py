"""Every table, imported so that ``SQLModel.metadata`` knows them all."""

from models.account import Account
from models.cluster import Cluster
from models.domain import Domain
from models.domain_release import DomainRelease
from models.edition import Edition
from models.instance import Instance
from models.notification import Notification
from models.order import Order
from models.record import Record
from models.request import Request
from models.ticket import Ticket
from models.top_up import TopUp
from models.zone_snapshot import ZoneSnapshot

__all__ = [
    "Account",
    "Cluster",
    "Domain",
    "DomainRelease",
    "Edition",
    "Instance",
    "Notification",
    "Order",
    "Record",
    "Request",
    "Ticket",
    "TopUp",
    "ZoneSnapshot",
]
