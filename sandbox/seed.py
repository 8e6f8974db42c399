"""What every sandbox account starts with: a school's pipelines and its contact fields."""

from sandbox.state import (
    INCOMING_STATUS_TYPE,
    LOST_STATUS_ID,
    WON_STATUS_ID,
    ContactField,
    Pipeline,
    Status,
)

MAIN_PIPELINE_ID = 1000
PROFTEST_PIPELINE_ID = 10350882
EXPRESS_COURSE_PIPELINE_ID = 6344290


def _pipeline(
    pipeline_id: int,
    name: str,
    sort: int,
    incoming_status_id: int,
    open_statuses: list[tuple[int, str]],
    *,
    is_main: bool = False,
) -> Pipeline:
    statuses = [
        Status(incoming_status_id, "Неразобранное", 10, "#c1c1c1", INCOMING_STATUS_TYPE, False),
        *(
            Status(status_id, status_name, 20 + 10 * index, "#99ccff")
            for index, (status_id, status_name) in enumerate(open_statuses)
        ),
        # amoCRM creates the two closing statuses in every pipeline, with these fixed ids.
        Status(WON_STATUS_ID, "Успешно реализовано", 10000, "#CCFF66", is_editable=False),
        Status(LOST_STATUS_ID, "Закрыто и не реализовано", 11000, "#D5D8DB", is_editable=False),
    ]
    return Pipeline(pipeline_id, name, sort, is_main, tuple(statuses))


def seed_pipelines() -> list[Pipeline]:
    return [
        _pipeline(
            MAIN_PIPELINE_ID,
            "Воронка",
            1,
            1001,
            [(1002, "Первичный контакт"), (1003, "Переговоры"), (1004, "Принимают решение")],
            is_main=True,
        ),
        _pipeline(
            PROFTEST_PIPELINE_ID,
            "Профтест",
            2,
            10350883,
            [(81854578, "Новая заявка"), (81854579, "Консультация")],
        ),
        _pipeline(
            EXPRESS_COURSE_PIPELINE_ID,
            "Экспресс-курс",
            3,
            6344291,
            [(54435014, "Новая"), (54423922, "Kaspi"), (54423923, "Карта"), (54423924, "Менеджер")],
        ),
    ]


def seed_contact_fields() -> list[ContactField]:
    return [
        ContactField(
            id=264911,
            code="PHONE",
            name="Телефон",
            enums={
                "WORK": 180001,
                "WORKDD": 180003,
                "MOB": 180005,
                "FAX": 180007,
                "HOME": 180009,
                "OTHER": 180011,
            },
        ),
        ContactField(
            id=264913,
            code="EMAIL",
            name="Email",
            enums={"WORK": 180013, "PRIV": 180015, "OTHER": 180017},
        ),
    ]
