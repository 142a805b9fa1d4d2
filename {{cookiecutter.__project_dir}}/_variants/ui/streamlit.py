"""{{ cookiecutter.project_name }}: a Streamlit page (``streamlit run main.py``)."""

from datetime import datetime

import streamlit as st

import items
from database import DatabaseBusy, database, said
from identity import KEY_PARAM, WRONG_HOST, NotSignedIn, current_user, wrong_host
from input_error import InputError


def readable(stamp: str) -> str:
    moment = datetime.fromisoformat(stamp)  # UTC (README: API contract)
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


st.set_page_config(page_title={{ cookiecutter.project_name | tojson }})
if wrong_host(st.context.headers):  # run locally: another Host than the app's own address (identity.py)
    st.error(WRONG_HOST)
    st.stop()
st.title({{ cookiecutter.project_name | tojson }})
try:
    owner = current_user(st.context.headers, st.query_params.get(KEY_PARAM))  # Streamlit sets no cookie
except NotSignedIn as error:
    st.error(str(error))
    st.stop()
st.caption(f"Signed in as `{owner.replace('`', '')}`")  # in a code span: the address is shown as it is
try:
    db = database()  # one pool per server process, shared by every session; a failed migration is not retried
except DatabaseBusy as error:  # busy, or unusable: one line that says what to do (the log has it once)
    st.error(f"The database is unavailable: {said(error)}")
    st.stop()

with st.form("new-item", clear_on_submit=True):  # the input is cleared after Add
    new_title = st.text_input("New item", max_chars=200, placeholder="What needs doing?")
    if st.form_submit_button("Add", type="primary"):
        try:
            items.create_item(db, owner, new_title)
        except InputError as error:  # refused input changes no row
            st.error(str(error))

rows = items.list_items(db, owner)
if not rows:
    st.caption("Nothing here yet: add your first item above.")
for item in rows:
    done_col, title_col, when_col, delete_col = st.columns([1, 6, 3, 2], vertical_alignment="center")
    done = done_col.checkbox("done", value=item["done"], key=f"done-{item['id']}", label_visibility="collapsed")
    if done != item["done"]:
        items.update_item(db, owner, item["id"], done=done)
        st.rerun()
    title_col.text(item["title"])  # text, never markdown or HTML
    when_col.caption(readable(item["updated_at"]))
    if delete_col.button("Delete", key=f"delete-{item['id']}"):
        items.delete_item(db, owner, item["id"])
        st.rerun()
