class ReviewSerializer:
    """A CQRS_SERIALIZER: any object with `.data` (as Django REST framework serializers)."""

    def __init__(self, instance):
        self.instance = instance

    @property
    def data(self):
        review = self.instance
        return {
            'id': review.id,
            'book': review.book_id,
            'stars': review.stars,
            'text_upper': review.text.upper(),
        }
