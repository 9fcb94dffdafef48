from django.utils.functional import SimpleLazyObject

from billing import selectors


def budget(request):
    """`budget_status` for the signed-in user on every page (the chat page's 80% banner).

    Lazy: the spend query runs only on pages whose template reads it, not on the admin or the login page.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"budget_status": SimpleLazyObject(lambda: selectors.budget_status(user))}
