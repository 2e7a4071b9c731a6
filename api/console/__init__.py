"""The web console: HTML pages for people, over the same public JSON API scripts use.

Each page is a small server-rendered shell (title, navigation, forms) plus a script that
fetches /data, /stats, /stats/ages and /runs with the reader's token and writes what they
answer into the page as text. No page holds data the API would not give a script.
"""
